"""Every change to sessions and instances goes through these functions.

Views, admin actions, consumers, tasks and commands parse their input and
call one of them. Docker is never called inside a database transaction: the
services that need Docker are the ones run by Celery tasks, and they change
state with compare-and-set updates (`from_statuses=`), so two workers racing
on one instance cannot both win.

- sessions: open (with its limits), close, extend, touch, reap.
- instances: create, remove, provision, fail, tear down, replace, and the
  status changes the reconciler asks for.
- hosts: the Docker hosts: where a new session goes, whether each answers,
  draining, down and back.
- prepared: the pools of sessions whose instance is started ahead of demand, per host.
- reconcile: bring Docker and the database back in line.
- shares: share links of a session's terminal.
- commands: a command run in a running instance (exec), and what it uses
  now (stats); they change nothing in the database, and run from the web process.
- ports: the ports the instance listens on, which of them are public, and
  where the platform's proxy may send a request for one.
- files: files uploaded to, downloaded from and listed in a running
  instance; nothing in the database changes either.

Services enqueue Celery tasks after commit; tasks import services inside
their bodies, so no module imports one that imports it back.
"""

from sessions_app.services.commands import instance_exec, instance_stats
from sessions_app.services.files import (
    Download,
    files_download,
    files_list,
    files_upload,
    upload_check_size,
    upload_spool,
)
from sessions_app.services.hosts import (
    host_get,
    host_look,
    host_mark_down,
    host_place,
    host_set_state,
    hosts_check,
    hosts_counted,
    live_instances,
)
from sessions_app.services.instances import (
    instance_create,
    instance_fail,
    instance_provision,
    instance_readdress,
    instance_remove,
    instance_replace,
    instance_reprovision,
    instance_requeue,
    instance_retry_teardown,
    instance_teardown,
    provisioning_is_full,
)
from sessions_app.services.ports import port_set_public, port_target, port_ticket, session_ports
from sessions_app.services.prepared import (
    prepared_session_remove,
    prepared_spec,
    sessions_prepare,
    sessions_unprepare,
)
from sessions_app.services.reconcile import instances_reconcile
from sessions_app.services.sessions import (
    Opened,
    session_close,
    session_create,
    session_extend,
    session_touch,
    sessions_reap_expired,
)
from sessions_app.services.shares import share_create, share_redeem, share_revoke

__all__ = [
    "host_get",
    "host_look",
    "host_mark_down",
    "host_place",
    "host_set_state",
    "hosts_check",
    "hosts_counted",
    "live_instances",
    "Download",
    "Opened",
    "files_download",
    "files_list",
    "files_upload",
    "instance_create",
    "instance_exec",
    "instance_fail",
    "instance_provision",
    "instance_readdress",
    "instance_remove",
    "instance_replace",
    "instance_reprovision",
    "instance_requeue",
    "instance_retry_teardown",
    "instance_stats",
    "instance_teardown",
    "instances_reconcile",
    "port_set_public",
    "port_target",
    "port_ticket",
    "prepared_session_remove",
    "prepared_spec",
    "provisioning_is_full",
    "session_close",
    "share_create",
    "share_redeem",
    "share_revoke",
    "session_create",
    "session_extend",
    "session_ports",
    "session_touch",
    "sessions_prepare",
    "sessions_reap_expired",
    "sessions_unprepare",
    "upload_check_size",
    "upload_spool",
]
