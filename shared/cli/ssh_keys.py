"""`--generate-ssh-keys`, as `az batchai` does it: use ~/.ssh/id_rsa if it is there, make it if not,
and send its public half (~/.ssh/id_rsa.pub, rebuilt from the private key when only that is left)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.cli.common import UserError

KEY_BITS = 2048


def ensure_rsa_key_pair(home: Path | None = None) -> str:
    """The public key of ~/.ssh/id_rsa, after making the pair if there is none."""
    folder = (home or Path.home()) / ".ssh"
    private_path, public_path = folder / "id_rsa", folder / "id_rsa.pub"
    try:
        if public_path.is_file():
            return public_path.read_text().strip()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if private_path.is_file():
            key = _load(private_path.read_bytes())
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
            descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(pem)
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        public_path.write_text(public + "\n")
        return public
    except (OSError, ValueError, TypeError) as exc:  # unreadable, or a key with a passphrase
        raise UserError(f"Cannot use or make the SSH key pair {private_path}: {exc}") from None


def _load(data: bytes) -> serialization.SSHPrivateKeyTypes:
    if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY"):
        return serialization.load_ssh_private_key(data, password=None)
    return serialization.load_pem_private_key(data, password=None)  # type: ignore[return-value]
