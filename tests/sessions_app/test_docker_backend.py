"""What the Docker backend asks the engine for, without an engine."""

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from sessions_app.backends.base import BackendError
from sessions_app.backends.disks import DiskError, LoopDisks, parse_size
from sessions_app.backends.docker import DockerBackend, exec_user, resource_names
from tests.factories import make_instance, make_playground

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance():
    make_playground(memory_limit_mb=512, pids_limit=300, cpu_limit="0.5")
    return make_instance()


def options(instance, **kwargs):
    backend = DockerBackend()
    network = SimpleNamespace(name=resource_names(instance)["network"], id="f00dfeed")
    return backend.container_options(instance, resource_names(instance), network)


def test_it_applies_the_playgrounds_limits(instance):
    made = options(instance)

    assert made["name"] == f"playground-{instance.session_id}"
    assert made["hostname"] == "node1"
    assert made["mem_limit"] == made["memswap_limit"] == "512m"
    assert made["pids_limit"] == 300
    assert made["nano_cpus"] == 500_000_000
    assert made["network"] == "f00dfeed"  # by id, never ambiguous
    assert made["volumes"] == {f"playground-{instance.storage_token}-docker": {"bind": "/var/lib/docker", "mode": "rw"}}
    assert made["labels"]["org.playground.session"] == instance.session_id
    assert not [value for value in made["environment"].values() if instance.session_id in value]
    assert made["restart_policy"] == {"Name": "unless-stopped"}


def test_it_keeps_no_log_of_the_terminal_by_default(instance):
    assert options(instance)["log_config"]["Type"] == "none"


def test_it_rotates_the_log_when_a_logging_driver_is_chosen(instance, settings):
    settings.PLAYGROUND_INSTANCE_LOG_DRIVER = "json-file"

    log = options(instance)["log_config"]

    assert log["Type"] == "json-file"
    assert log["Config"] == {"max-size": "1m", "max-file": "2"}


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("privileged", {"privileged": True}),
        (
            "capabilities",
            {
                "cap_add": ["ALL"],
                "cap_drop": ["SYS_RESOURCE"],
                "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            },
        ),
    ],
)
def test_it_grants_the_configured_security_profile(instance, settings, profile, expected):
    settings.PLAYGROUND_SECURITY_PROFILE = profile

    made = options(instance)

    assert {key: made[key] for key in expected} == expected
    assert ("privileged" in made) == (profile == "privileged")
    assert made["environment"]["PLAYGROUND_ROOTLESS"] == ""


def test_it_runs_instances_rootless_by_default(instance, settings):
    made = options(instance)

    assert made["environment"]["PLAYGROUND_ROOTLESS"] == "1"
    assert "privileged" not in made
    assert made["cap_drop"] == ["ALL"]
    assert sorted(made["cap_add"]) == ["CHOWN", "KILL", "MKNOD", "SETGID", "SETUID"]
    [seccomp] = made["security_opt"]
    profile = json.loads(seccomp.removeprefix("seccomp="))
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert {"clone", "unshare", "setns", "mount", "pivot_root", "chroot"} <= allowed
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert made["host_config_extra"] == {"MaskedPaths": [], "ReadonlyPaths": []}
    assert made["init"] is True


def test_it_runs_nothing_as_root_in_a_rootless_instance(instance, settings):
    assert exec_user() == "1000"
    settings.PLAYGROUND_SECURITY_PROFILE = "capabilities"
    assert exec_user() == ""


def test_it_runs_instances_under_another_runtime_when_configured(instance, settings):
    settings.PLAYGROUND_SECURITY_PROFILE = "runtime"
    settings.PLAYGROUND_DOCKER_RUNTIME = "sysbox-runc"

    made = options(instance)

    assert made["runtime"] == "sysbox-runc"
    assert "privileged" not in made and "cap_add" not in made


# --- The inner /var/lib/docker's disk ---------------------------------------------


class RecordingVolumes:
    def __init__(self) -> None:
        self.created: list[dict] = []

    def create(self, **kwargs) -> None:
        self.created.append(kwargs)


class FakeDisks:
    def __init__(self, unavailable: str | None) -> None:
        self.unavailable = unavailable
        self.ensured: list[tuple[str, str]] = []

    def unavailable_reason(self, docker_host: str) -> str | None:
        return self.unavailable

    def ensure(self, token: str, size: str) -> Path:
        self.ensured.append((token, size))
        return Path("/run/playground/disks") / token


def make_volume(instance, *, unavailable: str | None = None) -> tuple[list[dict], FakeDisks]:
    backend = DockerBackend()
    backend.client = SimpleNamespace(volumes=RecordingVolumes())
    backend.disks = FakeDisks(unavailable)
    backend.ensure_volume(instance, "the-volume")
    return backend.client.volumes.created, backend.disks


def test_it_mounts_a_disk_of_the_playgrounds_size_as_the_inner_docker_volume(instance):
    make_playground(storage_size="5G")
    instance.refresh_from_db()

    created, disks = make_volume(instance)

    assert disks.ensured == [(instance.storage_token, "5G")]
    [volume] = created
    assert volume["name"] == "the-volume"
    assert volume["driver"] == "local"
    assert volume["driver_opts"] == {"type": "ext4", "device": f"/run/playground/disks/{instance.storage_token}"}
    assert instance.session_id not in volume["driver_opts"]["device"]


def test_it_falls_back_to_an_unbounded_volume_and_says_why(instance, caplog):
    created, disks = make_volume(instance, unavailable="the platform does not run as root")

    assert disks.ensured == []
    assert "driver_opts" not in created[0]
    assert "not size-bounded: the platform does not run as root" in caplog.text


def test_it_refuses_to_start_an_instance_it_cannot_bound_when_told_to(instance, settings):
    settings.PLAYGROUND_BOUND_DISKS = "on"

    with pytest.raises(BackendError) as refused:
        make_volume(instance, unavailable="the Docker engine is remote (tcp://10.0.0.5:2376)")

    assert "remote" in refused.value.log_message


@pytest.mark.parametrize("setting, size", [("off", "10G"), ("auto", "")])
def test_it_leaves_the_volume_unbounded_when_asked(instance, settings, setting, size):
    settings.PLAYGROUND_BOUND_DISKS = setting
    make_playground(storage_size=size)
    instance.refresh_from_db()

    created, disks = make_volume(instance)

    assert disks.ensured == []
    assert "driver_opts" not in created[0]


def test_disk_sizes_are_read_in_binary_units():
    assert parse_size("10G") == 10 << 30
    assert parse_size("512m") == 512 << 20
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("10 GB")


def test_disks_refuse_a_path_for_anything_but_a_storage_token(tmp_path):
    disks = LoopDisks(tmp_path / "disks", tmp_path / "links")

    assert disks.image_path("ab12") == tmp_path / "disks" / "ab12.img"
    for bad in ("../etc/passwd", "a/b", "", "x" * 65):
        with pytest.raises(DiskError):
            disks.device_path(bad)


def test_disks_present_are_the_disk_files_only(tmp_path):
    disks = LoopDisks(tmp_path, tmp_path / "links")
    for name in ("ab12.img", "cd34.img", ".ef56.img.0a1b", "notes.txt", "bad name.img"):
        (tmp_path / name).touch()

    assert disks.tokens_present() == {"ab12", "cd34"}


def test_disks_need_a_local_engine():
    assert "remote" in LoopDisks().unavailable_reason("tcp://10.0.0.5:2376")


def test_stats_of_a_container_that_stops_between_its_samples_are_zeros_not_an_error(instance, monkeypatch):
    backend = DockerBackend()
    answers = iter([{"cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000}}}, {"memory_stats": {}}])
    monkeypatch.setattr(backend.client.api, "stats", lambda *args, **kwargs: next(answers))
    monkeypatch.setattr(backend, "_storage", lambda instance: (None, None))

    measured = backend.stats(instance)

    assert (measured.cpu_percent, measured.cpu_seconds, measured.memory_bytes, measured.pids) == (0.0, 0.0, 0, 0)


def test_the_process_of_an_instance_is_asked_of_the_engine_once(instance, monkeypatch, tmp_path):
    backend = DockerBackend()
    inspected = []

    def inspect(name):
        inspected.append(name)
        return {"Id": "c0ffee", "State": {"Running": True, "Pid": 4242}}

    monkeypatch.setattr(backend.client.api, "inspect_container", inspect)
    monkeypatch.setattr(backend, "docker_host", "unix:///var/run/docker.sock")
    tables = "  sl  local_address\n   0: 00000000:1F90 00000000:0000 0A 0\n"
    monkeypatch.setattr(backend, "_host_proc_net", lambda pid, container_id: tables if pid == 4242 else None)

    assert backend.listening_ports(instance) == {8080}
    assert backend.listening_ports(instance) == {8080}
    assert len(inspected) == 1


def test_a_process_is_read_from_the_hosts_proc_only_when_it_is_the_containers(monkeypatch):
    backend = DockerBackend()
    monkeypatch.setattr(backend, "docker_host", "unix:///var/run/docker.sock")
    own = Path("/proc/self/cgroup").read_text().splitlines()[0]  # certainly in its own cgroup file
    pid = os.getpid()

    assert backend._host_proc_net(pid, "not-this-container") is None
    assert "local_address" in backend._host_proc_net(pid, own)
    monkeypatch.setattr(backend, "docker_host", "tcp://10.0.0.5:2375")  # another machine's engine
    assert backend._host_proc_net(pid, own) is None


def test_it_pulls_each_preload_image_the_instance_lacks_as_its_learner(instance, monkeypatch):
    from sessions_app.backends.base import ExecExit, ExecOutput, ImagePreloadFailed

    make_playground(preload_images=["busybox", "registry.example/app:1"])
    instance.session.playground.refresh_from_db()
    backend = DockerBackend()
    ran = []

    def exec_(instance, cmd, *, stdin, timeout):
        ran.append(cmd)
        missing = cmd[-1] == "registry.example/app:1"
        yield ExecOutput("stderr", b"manifest unknown\n" if missing else b"")
        yield ExecExit(exit_code=1 if missing else 0, timed_out=False)

    monkeypatch.setattr(backend, "exec", exec_)

    with pytest.raises(ImagePreloadFailed) as failed:
        backend.preload(instance)

    assert [cmd[-1] for cmd in ran] == ["busybox", "registry.example/app:1"]
    assert all("docker image inspect" in cmd[2] and "docker pull" in cmd[2] for cmd in ran)
    assert "registry.example/app:1" in failed.value.message and "manifest unknown" in failed.value.message


def test_it_hands_the_registry_mirror_to_the_instance(instance, settings):
    settings.PLAYGROUND_REGISTRY_MIRROR = "172.17.0.1:5000"
    assert options(instance)["environment"]["PLAYGROUND_REGISTRY_MIRROR"] == "172.17.0.1:5000"

    settings.PLAYGROUND_REGISTRY_MIRROR = ""
    assert options(instance)["environment"]["PLAYGROUND_REGISTRY_MIRROR"] == ""


ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker" / "entrypoint.sh"


def run_mirror_setup(home: Path, *, rootless: bool, mirror: str, etc: Path) -> None:
    """Run the entrypoint's mirror_setup, with /etc/docker moved under `etc`."""
    source = ENTRYPOINT.read_text()
    function = source[source.index("mirror_setup() {") :]
    function = function[: function.index("\n}\n") + 3].replace("/etc/docker/", f"{etc}/")
    preamble = f'warn() {{ echo "$*" >&2; }}\nLEARNER_HOME={home}\nrootless={"1" if rootless else ""}\n'
    script = f"{preamble}{function}mirror_setup\n"
    env = {"PATH": os.environ["PATH"], "PLAYGROUND_REGISTRY_MIRROR": mirror}
    subprocess.run(["sh", "-c", script], env=env, check=True)


@pytest.mark.parametrize("rootless", [True, False])
def test_the_entrypoint_writes_the_mirror_into_the_inner_daemon_json(tmp_path, rootless):
    home, etc = tmp_path / "home", tmp_path / "etc"
    config = home / ".config" / "docker" / "daemon.json" if rootless else etc / "daemon.json"

    run_mirror_setup(home, rootless=rootless, mirror="172.17.0.1:5000", etc=etc)

    written = json.loads(config.read_text())
    assert written["registry-mirrors"] == ["http://172.17.0.1:5000"]
    assert written["insecure-registries"] == ["172.17.0.1:5000"]

    # Started again without a mirror: the platform's configuration is gone.
    run_mirror_setup(home, rootless=rootless, mirror="", etc=etc)
    assert not config.exists()


def test_egress_rules_go_only_with_a_bridge_gone_from_the_machine(monkeypatch, settings):
    # Another engine on the machine (a second Docker host) has bridges this
    # engine does not list: their rules stay. "lo" stands for such a bridge.
    from sessions_app.backends import docker as docker_backend

    settings.PLAYGROUND_FIREWALL_NETNS = ""
    removed = []
    monkeypatch.setattr(docker_backend, "egress_interfaces", lambda: {"lo": True, "br-0123456789ab": True})
    monkeypatch.setattr(docker_backend, "egress_remove", lambda *, interface: removed.append(interface))
    backend = DockerBackend()
    monkeypatch.setattr(backend.client.api, "networks", lambda: [])

    assert backend.egress_reconcile() == ([], ["br-0123456789ab"])
    assert removed == ["br-0123456789ab"]


def test_a_terminal_of_an_ssh_host_goes_through_the_engine_s_own_dial_stdio(monkeypatch):
    # As the docker CLI reaches an engine at ssh:// (checked by hand against a
    # real sshd: see docs/scaling.md); here, what is run.
    import asyncio

    from sessions_app.backends import Engine

    ran = []

    async def exec_(*args, **kwargs):
        ran.append(args)
        return SimpleNamespace(stdout="reader", stdin="writer")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", exec_)
    backend = DockerBackend.__new__(DockerBackend)  # no client: only the terminal's connection is made here
    backend.engine, backend.docker_host = Engine("eu-2", "ssh://ops@eu-2.example:2222"), "ssh://ops@eu-2.example:2222"

    assert asyncio.run(backend._open_engine_connection()) == ("reader", "writer")
    assert ran == [("ssh", "-p", "2222", "--", "ops@eu-2.example", "docker", "system", "dial-stdio")]
