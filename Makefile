# The two commands: `make run` and `make test`. Everything else here is what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# System tools the tests use: Debian's Chromium for the browser tests, dcmtk as a real DICOM peer,
# Orthanc 1.10 and its DICOMweb plugin as a peer and a DICOMweb server nobody here wrote
# (tests/orthanc.py; the archive benchmark's baseline). Each is `file:package`.
SYSTEM_TOOLS := /usr/bin/chromium:chromium /usr/bin/storescu:dcmtk /usr/sbin/Orthanc:orthanc \
	/usr/share/orthanc/plugins/libOrthancDicomWeb.so:orthanc-dicomweb /usr/bin/dciodvfy:dicom3tools \
	/usr/bin/jpegtran:libjpeg-turbo-progs

.PHONY: run test lint install install-dev system-tools migrate viewer viewer-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-base: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements/base.txt
	touch $@

$(VENV)/.installed-dev: requirements/base.txt requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements/dev.txt
	touch $@ $(VENV)/.installed-base

install: $(VENV)/.installed-base
install-dev: $(VENV)/.installed-dev

# The tests start their own Orthanc on free ports: the service Debian's package may start (a
# system Orthanc on 4242 and 8042) is stopped and disabled when this installs the package.
system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do \
	  [ -e "$${tool%%:*}" ] || missing="$$missing $${tool##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system tools:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing || exit 1; \
	  case " $$missing " in *" orthanc "*) \
	    $(SUDO) service orthanc stop >/dev/null 2>&1; \
	    $(SUDO) update-rc.d orthanc disable >/dev/null 2>&1; \
	    $(SUDO) systemctl disable --now orthanc >/dev/null 2>&1; true;; \
	  esac; \
	fi

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	@$(BIN)/python manage.py seed_demo --if-empty
	@echo
	@echo "VetPACS is starting: open http://127.0.0.1:8000/ (demo logins: README.md). Ctrl-C stops everything; a process that exits is started again."
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" exec $(BIN)/python -m vetclinic.supervisor Procfile

# The hot paths' compile-once queries (vetclinic/db.py) need no pass of their own: the suite runs
# with DATABASE_COMPILE_ONCE=check (tests/conftest.py), every compiled query checked against its
# plain Django queryset on every call.

# The DICOM protocol a second time with the listener's fast path off (imaging/dicom/net/fast/:
# C-STORE receive, C-FIND answers, C-MOVE/C-GET sub-operations, the reactor, the wire): plain
# pynetdicom must serve each service too. For each, what a peer sees of it (dcmtk and pynetdicom
# as peers): its answers, its failure statuses with their comments, C-CANCEL, TLS. Matching keys,
# access rules, process management and faults are the same code either way and run once.
FAST_PATH_OFF_TESTS := \
	$(addprefix tests/test_dicom_store.py::test_,storescu_stores_and_a_worker_indexes \
	  dcmsend_stores_each_transfer_syntax_as_sent pynetdicom_echoes_and_stores_the_bytes_it_sent \
	  bad_data_gets_a_failure_status_and_nothing_is_kept a_data_set_that_is_not_the_one_announced_is_refused \
	  storage_that_fails_gets_out_of_resources an_unregistered_caller_is_refused_and_logged) \
	tests/test_dicom_store_malformed.py \
	tests/test_dicom_store_failures.py::test_storescu_sending_into_a_full_disk_hears_out_of_resources_for_each_file_not_kept \
	$(addprefix tests/test_dicom_network.py::test_,with_tls_and_a_ca_dcmtk_echoes_and_stores_with_a_client_certificate_and_not_without \
	  plain_tcp_on_a_tls_listener_fails_cleanly_and_tls_callers_are_still_served) \
	$(addprefix tests/test_dicom_qr_find.py::test_,a_study_search_by_name_wildcard_date_range_and_modality_answers_from_the_record \
	  patient_root_at_every_level a_c_cancel_stops_the_answers_and_the_next_query_is_answered) \
	$(addprefix tests/test_dicom_qr_retrieve.py::test_,movescu_at_each_level_gets_what_was_stored_byte_for_byte \
	  getscu_gets_what_was_stored_byte_for_byte a_peer_that_takes_only_uncompressed_objects_gets_them_decompressed \
	  c_cancel_stops_a_move c_cancel_stops_a_get_even_while_a_sub_operation_waits_for_its_answer \
	  a_missing_file_fails_its_sub_operation_and_the_others_go refusals_carry_a_status_and_an_error_comment) \
	$(addprefix tests/test_worklist_dicom.py::test_,a_dr_room_finds_todays_dog_with_owner_breed_and_chip \
	  a_malformed_query_gets_a_failure_with_a_comment mpps_moves_the_order_to_in_progress_then_completed) \
	$(addprefix tests/test_dicom_commitment.py::test_,objects_stored_but_not_yet_indexed_are_waited_for_and_reported_committed_on_the_same_association \
	  when_the_modality_released_first_the_report_comes_on_a_new_association_to_its_registered_scp) \
	tests/test_dicom_tls_out.py::test_a_tls_move_destination_receives_the_study_over_tls

# On PostgreSQL the fast-path-off pass runs beside the first, and the first pass is itself three
# processes side by side, each on a test database of its own (DATABASE_URL's database name with
# a suffix): the DICOM network tests and the fault suite (FIRST_PASS_DICOM, with their listeners,
# workers and brokers); the browser tests, the benchmarks' smoke tests and the API's schema test
# (FIRST_PASS_BROWSER: Chromium, throw-away servers, generated requests); every other test in
# the third, so a test file added anywhere runs in one of them. The fast-path-off pass is short:
# after it, on its database, come the HL7 listener's and the consult answers' tests
# (FIRST_PASS_LATE), taken out of the third, which otherwise ran for three minutes alone at the
# end, one core idle. They were grouped by what the last fresh-clone CI measured, so that the
# four end together. The machine has 2 cores; a process often waits (on a listener, a worker,
# Chromium), so four keep both busy.
# Each other process's output is shown when the first ends; the target fails if any pass failed.
# On SQLite (one test database file, var/test.sqlite3) they run in turn, the first pass whole.
PASSES_BESIDE := $(if $(filter postgres://% postgresql://%,$(DATABASE_URL)),yes)
FIRST_PASS_DICOM := $(wildcard tests/test_dicom_*.py) $(wildcard tests/faults/test_*.py)
FIRST_PASS_BROWSER := $(wildcard tests/test_*browser*.py) tests/test_benchmarks.py tests/test_api_schemathesis.py
FIRST_PASS_LATE := tests/test_hl7_listener.py tests/test_consult_answers.py

test: install-dev system-tools
ifneq ($(PYTEST_ARGS),)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
else ifeq ($(PASSES_BESIDE),yes)
	@logs=$$(mktemp -d); \
	( DATABASE_URL=$(DATABASE_URL)_fast_path_off DICOM_FAST_PATH=false \
	    $(BIN)/python -m pytest -p no:cacheprovider $(FAST_PATH_OFF_TESTS) > $$logs/fast-path-off.log 2>&1; \
	  echo $$? > $$logs/fast-path-off.rc; \
	  DATABASE_URL=$(DATABASE_URL)_fast_path_off \
	    $(BIN)/python -m pytest -p no:cacheprovider $(FIRST_PASS_LATE) > $$logs/first-late.log 2>&1; \
	  echo $$? > $$logs/first-late.rc ) & fast_path_off_then_late=$$!; \
	DATABASE_URL=$(DATABASE_URL)_dicom \
	  $(BIN)/python -m pytest -p no:cacheprovider $(FIRST_PASS_DICOM) > $$logs/first-dicom.log 2>&1 & first_dicom=$$!; \
	DATABASE_URL=$(DATABASE_URL)_browser \
	  $(BIN)/python -m pytest -p no:cacheprovider $(FIRST_PASS_BROWSER) > $$logs/first-browser.log 2>&1 & first_browser=$$!; \
	$(BIN)/python -m pytest $(addprefix --ignore=,$(FIRST_PASS_DICOM) $(FIRST_PASS_BROWSER) $(FIRST_PASS_LATE)); first=$$?; \
	wait $$first_dicom; first_dicom=$$?; wait $$first_browser; first_browser=$$?; wait $$fast_path_off_then_late; \
	fast_path_off=$$(cat $$logs/fast-path-off.rc 2>/dev/null || echo missing); first_late=$$(cat $$logs/first-late.rc 2>/dev/null || echo missing); \
	echo "=== the first pass's DICOM network and fault tests"; cat $$logs/first-dicom.log; \
	echo "=== the first pass's browser, benchmark and schema tests"; cat $$logs/first-browser.log; \
	echo "=== the DICOM tests with DICOM_FAST_PATH=false"; cat $$logs/fast-path-off.log; \
	echo "=== the first pass's HL7 listener and consult answer tests"; cat $$logs/first-late.log; \
	rm -rf $$logs; \
	echo "=== passes: first $$first, its DICOM tests $$first_dicom, its browser tests $$first_browser and its HL7 and consult tests $$first_late, DICOM_FAST_PATH=false $$fast_path_off (0 is passed)"; \
	[ $$first = 0 ] && [ $$first_dicom = 0 ] && [ $$first_browser = 0 ] && [ $$first_late = 0 ] && [ $$fast_path_off = 0 ]
else
	$(BIN)/python -m pytest
	DICOM_FAST_PATH=false $(BIN)/python -m pytest $(FAST_PATH_OFF_TESTS)
endif

# The linters CI runs: ruff's rules (pyproject.toml), its formatter, and mypy with django-stubs
# over the typed modules (the `files` of [tool.mypy] in pyproject.toml).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The study viewer (viewer/, README's "Viewer"): its bundle is committed in
# imaging/static/imaging/viewer/, so `make run` needs no Node. `make viewer` rebuilds it from the
# lockfile; `make viewer-check` rebuilds into a temporary folder and fails if that differs from
# the committed bundle (the build is deterministic: same lockfile, same bytes).
VIEWER_STATIC := imaging/static/imaging/viewer

viewer:
	cd viewer && npm ci --no-audit --no-fund && node build.mjs

viewer-check:
	@out=$$(mktemp -d); \
	(cd viewer && npm ci --no-audit --no-fund --loglevel=error && node build.mjs $$out/viewer) && \
	diff -r $$out/viewer $(VIEWER_STATIC) && echo "The committed viewer bundle is what viewer/ builds."; \
	status=$$?; rm -rf $$out; \
	[ $$status = 0 ] || { echo "$(VIEWER_STATIC) is not what viewer/ builds: run make viewer and commit it."; exit 1; }
