"""Create an API client and print its key (shown this once; only a hash is kept).

manage.py create_api_client "Acme PMS" --scopes patients:write orders:write reference:read
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.api.clients import api_client_create
from vetclinic.audit.services import Actor


class Command(BaseCommand):
    help = "Create an API client for a practice-management system and print its key once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes", nargs="+", required=True, help="resource:read or resource:write, or *"
        )
        parser.add_argument("--rate-limit", type=int, default=600, help="requests per minute")

    def handle(self, *args, name, scopes, rate_limit, **options):
        try:
            client, key = api_client_create(
                actor=Actor.system("create_api_client"), name=name, scopes=scopes, rate_limit=rate_limit
            )
        except ValidationError as error:
            raise CommandError(" ".join(m for ms in error.message_dict.values() for m in ms)) from None
        self.stdout.write(f"API client '{client.name}' created with scopes {' '.join(client.scopes)}.")
        self.stdout.write("Its key (shown only now; send it as 'Authorization: Bearer <key>'):")
        self.stdout.write(key)
