"""The embedded Celery broker: messages are files in a folder under var/.

It is kombu's filesystem transport with one fix: kombu writes a message file in
place, so a polling worker can pick up a file that is still empty. Here each
message is written to a temporary name and renamed into the queue folder, which
is atomic on one filesystem. The folders are created on first use.

The broker is not where messages live: the database is. A message file lost in a
crash is found again by the sweeper, which enqueues every message still queued.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for folder in (self.data_folder_in, self.data_folder_out, self.control_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000)):015d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # No ".msg" suffix on the temporary name: consumers only take *.<queue>.msg.
        temporary = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.tmp")
        try:
            with open(temporary, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add message to queue folder {self.data_folder_out!r}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "embedded"
    driver_name = "embedded"
