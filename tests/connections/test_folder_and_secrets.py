"""Folder transport (atomic, templated, never outside its root) and secrets at rest (Fernet, rotation)."""
import os

import pytest
from cryptography.fernet import Fernet

from connections.crypto import SecretsUnreadable, decrypt_secrets, encrypt_secrets, rotate
from connections.transports import Delivery, TransportError, transports

FOLDER = transports.get("folder")
PLACES = {"message_id": "m-1", "flow": "lab/results", "date": "2026-11-24", "time": "101500", "run_id": 3, "flow_id": 1}


def write(root, file_name, data=b"x", mode="file"):
    return FOLDER.write({"path": str(root)}, {}, {"file_name": file_name, "mode": mode}, Delivery(data, "text/plain", PLACES))


def test_file_name_template_and_atomic_write(tmp_path):
    write(tmp_path, "{date}/{flow}-{message_id}.csv", b"a,b\n")
    target = tmp_path / "2026-11-24" / "lab_results-m-1.csv"  # a "/" in a value cannot add a folder
    assert target.read_bytes() == b"a,b\n"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".pushflow-")]  # no temporary left


def test_a_spooled_output_is_copied_whole_in_both_modes(tmp_path):
    import io

    body = bytes(range(256)) * 1000  # several read chunks
    for mode in ("file", "append", "append"):
        where = FOLDER.write({"path": str(tmp_path)}, {}, {"file_name": f"{mode}.bin", "mode": mode},
                            Delivery(b"", "application/octet-stream", PLACES, file=io.BytesIO(body)))
        assert f"wrote {len(body)} bytes" in str(where)
    assert (tmp_path / "file.bin").read_bytes() == body and (tmp_path / "append.bin").read_bytes() == body * 2


def test_same_name_is_replaced_whole_so_a_rerun_is_idempotent(tmp_path):
    write(tmp_path, "{message_id}.csv", b"first")
    write(tmp_path, "{message_id}.csv", b"second")
    assert (tmp_path / "m-1.csv").read_bytes() == b"second"


def test_append_mode(tmp_path):
    write(tmp_path, "all.csv", b"1\n", mode="append")
    write(tmp_path, "all.csv", b"2\n", mode="append")
    assert (tmp_path / "all.csv").read_bytes() == b"1\n2\n"


@pytest.mark.parametrize("name", ["../escape.csv", "/etc/passwd", "a/../../b.csv"])
def test_names_leaving_the_folder_are_refused(tmp_path, name):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(TransportError, match="relative name|leaves"):
        write(root, name)


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(TransportError, match="leaves"):
        write(root, "link/file.csv")
    assert not list(outside.iterdir())


def test_unknown_placeholder_names_the_known_ones(tmp_path):
    with pytest.raises(TransportError, match=r"unknown placeholder \{patient\}.*\{message_id\}"):
        write(tmp_path, "{patient}.csv")


def test_secrets_round_trip_and_key_rotation(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PUSHFLOW_ENCRYPTION_KEYS = [old]
    token = encrypt_secrets({"password": "p@ss"})
    assert "p@ss" not in token
    settings.PUSHFLOW_ENCRYPTION_KEYS = [new, old]
    assert decrypt_secrets(token) == {"password": "p@ss"}
    rotated = rotate(token)
    settings.PUSHFLOW_ENCRYPTION_KEYS = [new]
    assert decrypt_secrets(rotated) == {"password": "p@ss"}
    with pytest.raises(SecretsUnreadable):
        decrypt_secrets(token)
