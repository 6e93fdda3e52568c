"""The DICOM listener's network side against peers that break the rules: PDU lengths it never
agreed to, its database gone while it checks who calls, plain TCP on a TLS port."""

import socket
import subprocess

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from imaging.models import Modality
from tests.conftest import tool_required, wait_for


def echo(port, calling="ECHOSCU"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="VETPACS")
    assert assoc.is_established
    status = assoc.send_c_echo().Status
    assoc.release()
    return status


@pytest.fixture
def echoscu(reference_data):
    return Modality.objects.create(ae_title="ECHOSCU", host="127.0.0.1", modality_type="OT")


def echoscu_run(port, calling):
    """dcmtk's echoscu: (return code, what it printed)."""
    result = subprocess.run(
        [tool_required("/usr/bin/echoscu"), "-aet", calling, "-aec", "VETPACS", "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


# As echoscu prints an A-ASSOCIATE-RJ (PS3.8 9.3.4).
TRANSIENT = "Transient, Source: Service Provider (Presentation Related)\nF: Reason: Temporary Congestion"
NOT_RECOGNIZED = "Rejected Permanent, Source: Service User\nF: Reason: Calling AE Title Not Recognized"


def test_a_listener_that_cannot_reach_its_database_refuses_every_caller_for_now(
    echoscu, dicom_listener_start
):
    nowhere = "postgres://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    listener = dicom_listener_start(DATABASE_URL=nowhere)

    for calling in ("STRANGER", "ECHOSCU"):
        code, output = echoscu_run(listener.port, calling)
        assert code != 0 and TRANSIENT in output, output
    log = listener.log.read_text()
    assert "refused association from STRANGER at 127.0.0.1: cannot check the caller now" in log


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a SQLite file has no server to lose")
def test_while_postgresql_refuses_the_listener_callers_are_refused_and_none_is_let_in_after_it_returns(
    echoscu, dicom_listener
):
    assert echo(dicom_listener.port) == 0x0000  # the listener holds database connections now
    ours = connection.cursor().connection.info.backend_pid  # this test's connection stays
    settings = {**connection.settings_dict, "NAME": "postgres"}  # the server's own database
    with DatabaseWrapper(settings).cursor() as server:  # an outage, for every connection but ours
        server.execute(f'ALTER DATABASE "{connection.settings_dict["NAME"]}" ALLOW_CONNECTIONS false')
        server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            [connection.settings_dict["NAME"], ours],
        )
        try:
            for calling in ("STRANGER", "ECHOSCU"):
                code, output = echoscu_run(dicom_listener.port, calling)
                assert code != 0 and TRANSIENT in output, output
        finally:
            server.execute(f'ALTER DATABASE "{connection.settings_dict["NAME"]}" ALLOW_CONNECTIONS true')

    # The first association after: refused still (the pool reconnects with a backoff) or
    # checked, never waved in; the listener then serves registered callers again by itself.
    code, output = echoscu_run(dicom_listener.port, "STRANGER")
    assert code != 0 and (TRANSIENT in output or NOT_RECOGNIZED in output), output
    wait_for(lambda: echoscu_run(dicom_listener.port, "ECHOSCU")[0] == 0, timeout=60, interval=1,
             message="the listener to check callers again")  # fmt: skip
    code, output = echoscu_run(dicom_listener.port, "STRANGER")
    assert code != 0 and NOT_RECOGNIZED in output, output
    assert list(Modality.objects.values_list("ae_title", flat=True)) == ["ECHOSCU"]


@pytest.mark.django_db
def test_the_modality_admin_says_which_modalities_are_taken_from_any_address(client, staff):
    from django.urls import reverse

    Modality.objects.create(ae_title="OPENROOM", modality_type="DX")
    Modality.objects.create(ae_title="DRROOM", host="192.0.2.10", modality_type="DX")
    client.force_login(staff["admin"])

    listing = client.get(reverse("admin:imaging_modality_changelist")).content.decode()
    assert "No: any address" in listing and "192.0.2.10" in listing
    open_only = client.get(reverse("admin:imaging_modality_changelist"), {"address_checked": "no"})
    assert [m.ae_title for m in open_only.context["cl"].result_list] == ["OPENROOM"]
    page = client.get(reverse("admin:imaging_modality_add")).content.decode()
    assert "Without a host, a caller from any address that uses this AE title may send images" in page
    assert [m.address_checked() for m in Modality.objects.order_by("ae_title")] == [True, False]


@pytest.mark.django_db
def test_seed_demo_registers_its_modalities_with_a_host_to_check(capsys):
    from django.core.management import call_command

    call_command("seed_demo")
    assert dict(Modality.objects.values_list("ae_title", "host")) == {
        "CTROOM": "127.0.0.1", "DRROOM": "127.0.0.1", "USROOM": "127.0.0.1",
    }  # fmt: skip


@pytest.fixture
def certificates(tmp_path):
    """A test CA, and a server (localhost, 127.0.0.1) and a client certificate it signed (PEM)."""
    openssl = tool_required("/usr/bin/openssl")
    folder = tmp_path / "tls"
    folder.mkdir()

    def run(*args):
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=VetPACS test CA", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    for name, extension in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth"),
    ]:  # fmt: skip
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        (folder / f"{name}.ext").write_text(extension + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    return folder


def dcmtk(tool, port, calling, *args, files=()):
    """A dcmtk tool (absolute path: .venv/bin has pynetdicom's namesakes): (return code, output)."""
    result = subprocess.run(
        [tool_required(f"/usr/bin/{tool}"), "-aet", calling, "-aec", "VETPACS", *args,
         "127.0.0.1", str(port), *files],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_with_tls_and_a_ca_dcmtk_echoes_and_stores_with_a_client_certificate_and_not_without(
    echoscu, dicom_listener_start, certificates, storage_root
):
    from pydicom.data import get_testdata_file
    from pynetdicom.sop_class import CTImageStorage

    from imaging.dicom.net.tls import client_context

    Modality.objects.create(ae_title="STORESCU", host="127.0.0.1", modality_type="CT")
    tls = certificates
    listener = dicom_listener_start(
        DICOM_TLS_CERT=str(tls / "server.pem"), DICOM_TLS_KEY=str(tls / "server.key"),
        DICOM_TLS_CA=str(tls / "ca.pem"),
    )  # fmt: skip
    assert "with TLS" in listener.log.read_text()
    ours = ["+tls", str(tls / "client.key"), str(tls / "client.pem"), "+cf", str(tls / "ca.pem")]

    assert dcmtk("echoscu", listener.port, "ECHOSCU", *ours)[0] == 0
    ct = get_testdata_file("CT_small.dcm")
    code, output = dcmtk("storescu", listener.port, "STORESCU", *ours, files=[ct])
    assert code == 0, output
    assert len(list(storage_root.rglob("*.dcm"))) == 1
    # No client certificate: the handshake fails, and the listener goes on.
    code, output = dcmtk("echoscu", listener.port, "ECHOSCU", "+tla", "+cf", str(tls / "ca.pem"))
    assert code != 0, output
    wait_for(lambda: "TLS handshake with 127.0.0.1 failed" in listener.log.read_text(), timeout=10,
             message="the failed handshake in the log")  # fmt: skip
    # tls.client_context, for our own sending: pynetdicom over it, checking the listener's name.
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    context = client_context(ca=tls / "ca.pem", cert=tls / "client.pem", key=tls / "client.key")
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="VETPACS", tls_args=(context, "localhost"))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assert assoc.send_c_store(ct).Status == 0x0000
    assoc.release()


@pytest.mark.parametrize("processes", [1, 2])
def test_plain_tcp_on_a_tls_listener_fails_cleanly_and_tls_callers_are_still_served(
    echoscu, dicom_listener_start, certificates, processes
):
    tls = certificates
    listener = dicom_listener_start(
        processes=processes, DICOM_TLS_CERT=str(tls / "server.pem"), DICOM_TLS_KEY=str(tls / "server.key")
    )
    anonymous = ["+tla", "+cf", str(tls / "ca.pem")]  # TLS without a client certificate; none asked for

    code, output = dcmtk("echoscu", listener.port, "ECHOSCU")  # plain TCP
    assert code != 0, output
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 10
    assert not ae.associate("127.0.0.1", listener.port, ae_title="VETPACS").is_established
    # A caller that connects and says nothing holds up no one else.
    with socket.create_connection(("127.0.0.1", listener.port)):
        for _ in range(3):
            code, output = dcmtk("echoscu", listener.port, "ECHOSCU", *anonymous)
            assert code == 0, output
    assert listener.process.poll() is None
