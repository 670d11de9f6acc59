"""Files in and out of a session's running instance: `POST /sessions/{id}/files`
(upload), `GET /sessions/{id}/files` (download) and `GET /sessions/{id}/files/list`.

Only the learner's home and /tmp may be reached. A relative path starts in
the home; a path with a `..`, or one that leads outside those roots, by its
own spelling or through a symbolic link, is refused. The instance itself
resolves the path (as its learner), and only the resolved path is then read
or written: the platform never follows a link. Reading and writing run as the
learner too, so a link swapped in between the check and the transfer still
reaches nothing the learner could not reach in its terminal.

Nothing here changes the database. A transfer holds one of the places that
commands hold (services.commands): a thread, while it runs.
"""

import logging
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone

from playground.db import release_connection
from sessions_app.backends import backend_for
from sessions_app.backends.base import AttachError, Backend, FilesError, PathInfo, Upload
from sessions_app.errors import (
    FileNotFound,
    FilePermissionDenied,
    FileTransferFailed,
    InstanceNotRunning,
    InvalidPath,
    PathNotAllowed,
    UploadTooLarge,
)
from sessions_app.models import Instance, Session
from sessions_app.services.commands import Holding, running_instance, take_place

logger = logging.getLogger(__name__)

PATH_MAX = 4096  # characters of a path, as Linux's PATH_MAX
NAME_MAX = 255  # bytes of a file name
LIST_MAX = 10_000  # entries of one listing
SPOOL_CHUNK = 1 << 20  # bytes read from a raw body at a time
OTHER_ROOTS = ("/tmp",)  # besides the learner's home


@dataclass(frozen=True)
class Download:
    """A file's bytes, or a directory's tar, as they are read from the instance."""

    filename: str  # for Content-Disposition
    content_type: str
    chunks: Iterator[bytes]  # holds its place until read to the end or closed


def files_list(*, session: Session, path: str) -> dict:
    """The entries of a directory of the session's instance (backends.base.FileEntry).

    `{"path": resolved, "entries": [...], "truncated": bool}`: at most
    LIST_MAX entries, sorted by name; a symbolic link is listed, not followed.
    """
    instance = running_instance(session, "list")
    backend = backend_for(instance)
    found = _resolve(backend, instance, path)
    if found.type != "dir":
        raise InvalidPath(f"{found.path} is not a directory.")
    _may(found, "read")
    try:
        entries = backend.files_list(instance, found.path, limit=LIST_MAX + 1)
    except FilesError as exc:
        raise FilePermissionDenied(log_message=f"list of {found.path} in session {session.pk}: {exc}") from None
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None
    return {"path": found.path, "entries": entries[:LIST_MAX], "truncated": len(entries) > LIST_MAX}


def files_download(*, session: Session, path: str) -> Download:
    """A file of the session's instance, or a directory as a tar, to be streamed.

    The checks run, and the first bytes are read, before this returns: an
    instance that does not answer is an error here, not a stream cut short.
    Past that, an error ends the stream early (it is logged).
    """
    instance = running_instance(session, "download")
    backend = backend_for(instance)
    found = _resolve(backend, instance, path)
    if found.type not in ("file", "dir"):
        raise InvalidPath(f"{found.path} is neither a file nor a directory.")
    _may(found, "read")
    release = take_place(session.pk)
    try:
        chunks = _read(backend, instance, found.path, timeout=_time_left(session))
    except BaseException:
        release()
        raise
    release_connection()  # a download may last minutes without the database
    name = posixpath.basename(found.path)
    if found.type == "dir":
        return Download(f"{name}.tar", "application/x-tar", Holding(chunks, release))
    return Download(name, "application/octet-stream", Holding(chunks, release))


def files_upload(*, session: Session, path: str, uploads: list[Upload], into_directory: bool) -> list[dict]:
    """Write files in the session's instance, as its learner; returns `[{"path", "size"}]` of each.

    With `into_directory`, `path` names a directory and each upload keeps its
    own name there; without, `path` names the one upload's file itself (its
    directory must exist). A file or symbolic link of that name is replaced;
    a link is never followed. Refused as a whole, before anything is written,
    past PLAYGROUND_UPLOAD_MAX bytes.
    """
    upload_check_size(sum(upload.size for upload in uploads))
    for upload in uploads:
        _check_name(upload.name)
    instance = running_instance(session, "upload")
    backend = backend_for(instance)
    if into_directory:
        directory = _resolve(backend, instance, path)
        if directory.type != "dir":
            raise InvalidPath(f"{directory.path} is not a directory: files are uploaded into one.")
    else:
        directory = _file_directory(backend, instance, path)
    _may(directory, "write")
    release = take_place(session.pk)
    release_connection()  # the upload may last minutes without the database
    try:
        backend.files_write(instance, directory.path, uploads, timeout=_time_left(session))
    except FilesError as exc:
        raise FileTransferFailed(
            f"The files could not be written: {str(exc)[:500]}", log_message=f"upload in session {session.pk}: {exc}"
        ) from None
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None
    finally:
        release()
    return [{"path": posixpath.join(directory.path, upload.name), "size": upload.size} for upload in uploads]


def upload_check_size(size: int) -> None:
    """Refuse an upload of `size` bytes past PLAYGROUND_UPLOAD_MAX."""
    if size > settings.PLAYGROUND_UPLOAD_MAX:
        raise UploadTooLarge(
            f"The upload is larger than the playground accepts ({settings.PLAYGROUND_UPLOAD_MAX} bytes).",
            log_message=f"an upload of {size} bytes or more refused",
        )


def upload_spool(*, stream: BinaryIO, name: str) -> Upload:
    """A request's raw body as one Upload, spooled to disk past a few megabytes, so
    that memory stays flat; refused (UploadTooLarge) as soon as it passes the cap.
    The caller closes the upload's file."""
    spooled = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)
    size = 0
    try:
        while chunk := stream.read(SPOOL_CHUNK):
            size += len(chunk)
            upload_check_size(size)
            spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return Upload(name=name, size=size, file=spooled)


# --- Paths ---------------------------------------------------------------------------


def _absolute(home: str, path: str) -> str:
    """The absolute path `path` spells, refused (400) as it is spelled: `..`, or outside the roots."""
    if not path or "\x00" in path or len(path) > PATH_MAX:
        raise InvalidPath(f"A path is 1 to {PATH_MAX} characters, without NUL.")
    if ".." in path.split("/"):
        raise InvalidPath("A path may not contain `..`.")
    absolute = "/" + posixpath.normpath(posixpath.join(home, path)).lstrip("/")
    if not _inside(home, absolute):
        raise PathNotAllowed(log_message=f"path {absolute!r} outside the roots")
    return absolute


def _inside(home: str, path: str) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in (home, *OTHER_ROOTS))


def _resolve(backend: Backend, instance: Instance, path: str) -> PathInfo:
    """What `path` names in the instance, once the instance resolved it: 404 when nothing,
    400 when a symbolic link on its way leads outside the roots."""
    home = backend.home(instance)
    absolute = _absolute(home, path)
    try:
        found = backend.files_stat(instance, absolute)
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None
    if found is None:
        raise FileNotFound(f"There is no {absolute} in the instance.")
    if not _inside(home, found.path):
        raise PathNotAllowed(
            f"{absolute} leads to {found.path} through a symbolic link: only the learner's home and /tmp "
            "can be reached.",
            log_message=f"path {absolute!r} resolves to {found.path!r}, outside the roots",
        )
    return found


def _file_directory(backend: Backend, instance: Instance, path: str) -> PathInfo:
    """The directory an upload named by its own path lands in, once the instance resolved it."""
    home = backend.home(instance)
    absolute = _absolute(home, path)
    try:
        existing = backend.files_stat(instance, absolute)
    except AttachError as exc:
        raise InstanceNotRunning(log_message=str(exc)) from None
    if existing is not None and existing.type == "dir":
        raise InvalidPath(f"{existing.path} is a directory: give the file's own path, or upload as multipart.")
    if existing is not None and not _inside(home, existing.path):
        raise PathNotAllowed(
            f"{absolute} is a symbolic link to {existing.path}: only the learner's home and /tmp can be reached.",
            log_message=f"upload to {absolute!r}, a link to {existing.path!r}",
        )
    parent, name = posixpath.split(absolute)
    _check_name(name)
    directory = _resolve(backend, instance, parent)
    if directory.type != "dir":
        raise InvalidPath(f"{directory.path} is not a directory.")
    return directory


def _check_name(name: str) -> None:
    if name in ("", ".", "..") or "/" in name or "\x00" in name or len(name.encode()) > NAME_MAX:
        raise InvalidPath(f"{name[:100]!r} is not a file name: 1 to {NAME_MAX} bytes, no `/`, not `.` or `..`.")


def _may(found: PathInfo, what: str) -> None:
    if not (found.readable if what == "read" else found.writable):
        raise FilePermissionDenied(f"The learner may not {what} {found.path}.")


# --- Transfers -----------------------------------------------------------------------


def _time_left(session: Session) -> int:
    """A transfer never outlives its session."""
    return max(1, int((session.expires_at - timezone.now()).total_seconds()))


def _read(backend: Backend, instance: Instance, path: str, *, timeout: int) -> Iterator[bytes]:
    chunks = backend.files_read(instance, path, timeout=timeout)
    try:
        first = next(chunks, b"")
    except (AttachError, FilesError) as exc:
        chunks.close()
        raise InstanceNotRunning(log_message=f"download of {path}: {exc}") from None

    def rest() -> Iterator[bytes]:
        try:
            if first:
                yield first
            yield from chunks
        except (AttachError, FilesError) as exc:
            logger.warning("download of %s in session %s broke off: %s", path, instance.session_id, exc)
        finally:
            chunks.close()

    return rest()
