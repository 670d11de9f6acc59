"""The broker of the embedded default: kombu's filesystem transport, made safe
for several writers.

kombu writes a message file in place, so a worker that lists the folder at
that moment moves away an empty file, fails to decode it and stops. Writing
the message beside its final name and renaming it, which is atomic on POSIX,
means a worker only ever sees whole messages.
"""

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "playground-filesystem"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # The reader takes only names ending in ".<queue>.msg".
        partial = final + ".part"
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register(folders: dict[str, str]) -> None:
    """Make the broker's folders and let kombu find the transport by its scheme.

    Called when the app starts (sessions_app.apps), in every process that
    sends or takes tasks.
    """
    for folder in set(folders.values()):
        os.makedirs(folder, exist_ok=True)
    TRANSPORT_ALIASES[SCHEME] = "playground.broker:Transport"
