"""The key pair a cluster's nodes trust one another with: mpirun on one node reaches the others over
ssh with it. Made once per cluster when the cluster is created, kept beside its agent token in the
cluster's document (never returned by a read), and handed only to the cluster's own VMs."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class ClusterKey:
    private: str = field(repr=False)  # OpenSSH private key
    public: str  # authorized_keys line

    def to_doc(self) -> dict[str, str]:
        return {"private": self.private, "public": self.public}

    @classmethod
    def from_doc(cls, doc: dict[str, str]) -> ClusterKey:
        return cls(private=doc["private"], public=doc["public"])


def new_cluster_key(comment: str = "batchai-cluster") -> ClusterKey:
    """A fresh Ed25519 key pair in OpenSSH's formats."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return ClusterKey(private=private, public=f"{public} {comment}")
