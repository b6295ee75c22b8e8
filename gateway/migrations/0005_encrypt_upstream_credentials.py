"""Upstream credentials encrypted at rest: the column becomes text, then every row is encrypted."""

from django.db import migrations, models

import gateway.credential_encryption
from gateway.credential_encryption import UndecryptableCredentialError, decrypt, encrypt


def is_encrypted(value: str) -> bool:
    try:
        decrypt(value)
    except UndecryptableCredentialError:
        return False
    return True


def encrypt_existing(apps, schema_editor):
    # The historical model's column is plain text here: values are read and written as stored.
    UpstreamCredential = apps.get_model("gateway", "UpstreamCredential")
    for pk, secret in UpstreamCredential.objects.values_list("pk", "secret"):
        if not is_encrypted(secret):  # a run stopped halfway may have done some rows already
            UpstreamCredential.objects.filter(pk=pk).update(secret=encrypt(secret))


def decrypt_existing(apps, schema_editor):
    UpstreamCredential = apps.get_model("gateway", "UpstreamCredential")
    for pk, secret in UpstreamCredential.objects.values_list("pk", "secret"):
        if is_encrypted(secret):
            UpstreamCredential.objects.filter(pk=pk).update(secret=decrypt(secret))


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0004_upstreamcredential_disabled_at"),
    ]

    operations = [
        migrations.AlterField(model_name="upstreamcredential", name="secret", field=models.TextField()),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        migrations.AlterField(
            model_name="upstreamcredential",
            name="secret",
            field=gateway.credential_encryption.EncryptedTextField(
                help_text="Stored encrypted with UPSTREAM_SECRET_KEYS."
            ),
        ),
    ]
