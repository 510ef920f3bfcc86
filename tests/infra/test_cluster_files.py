"""The shipped cluster definitions (Ray cluster launcher YAML, KubeRay RayCluster) load, match the
installed Ray / Python / pinned stack, give CPU and GPU workers, point every node at an MLflow
tracking server with token auth on, and name a `clpipe run` entry command the CLI accepts.
The scripts under infra/ parse with `bash -n`."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from flows.cli import build_parser
from tests.conftest import REPO

INFRA = REPO / "infra"
PYTHON_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"
IMAGE = re.compile(rf"^rayproject/ray:{re.escape(ray.__version__)}-{PYTHON_TAG}-(cpu|gpu)$")
PINS = {
    "torch": version("torch").split("+")[0],  # the local CPU wheel reports 2.13.0+cpu
    "prefect": version("prefect"),
    "mlflow": version("mlflow"),
}
SHARED_MOUNT = "/mnt/clpipe"


@pytest.fixture(scope="module")
def launcher() -> dict:
    return yaml.safe_load((INFRA / "ray-cluster.yaml").read_text())


@pytest.fixture(scope="module")
def kuberay() -> dict:
    documents = list(yaml.safe_load_all((INFRA / "kuberay-raycluster.yaml").read_text()))
    (cluster,) = [doc for doc in documents if doc["kind"] == "RayCluster"]
    return cluster


def _containers(cluster: dict) -> dict[str, dict]:
    """The Ray container of the head and of each worker group, keyed "head" / group name."""
    spec = cluster["spec"]
    groups = {"head": spec["headGroupSpec"], **{group["groupName"]: group for group in spec["workerGroupSpecs"]}}
    return {name: group["template"]["spec"]["containers"][0] for name, group in groups.items()}


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container["env"]}


def _assert_entrypoint(command: str) -> None:
    words = shlex.split(command)
    assert words[0] == "clpipe", command
    args = build_parser().parse_args(words[1:])  # the real CLI accepts every flag
    assert args.command == "run"
    # Checkpoints and datasets must live where every node can read them.
    assert args.workspace.startswith(SHARED_MOUNT + "/"), command


def _assert_pins(commands: str) -> None:
    for package, pinned in PINS.items():
        assert f"{package}=={pinned}" in commands, f"{package}=={pinned} not installed by: {commands}"


@pytest.mark.parametrize("script", sorted(INFRA.glob("*.sh")), ids=lambda path: path.name)
def test_script_parses(script):
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_pyproject_pins_the_installed_ray_and_python():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"ray[default,train,data,serve]=={ray.__version__}"' in pyproject
    assert f'requires-python = ">={sys.version_info.major}.{sys.version_info.minor}' in pyproject


class TestLauncher:
    def test_validates_against_the_installed_ray_schema(self, launcher):
        schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
        jsonschema.validate(launcher, schema)
        assert launcher["head_node_type"] in launcher["available_node_types"]

    def test_images_match_ray_and_python(self, launcher):
        docker = launcher["docker"]
        node_types = launcher["available_node_types"].values()
        images = [docker["image"], *(t["docker"]["worker_image"] for t in node_types if "docker" in t)]
        for image in images:
            assert IMAGE.match(image), image

    def test_cpu_and_gpu_worker_types(self, launcher):
        types = launcher["available_node_types"]
        workers = {name: t for name, t in types.items() if name != launcher["head_node_type"]}
        gpu = [t for t in workers.values() if t["resources"].get("GPU", 0) >= 1]
        cpu = [t for t in workers.values() if t["resources"].get("CPU", 0) >= 1 and not t["resources"].get("GPU")]
        assert gpu and cpu
        for node_type in gpu:  # GPU nodes run the CUDA image and install torch's CUDA build
            assert node_type["docker"]["worker_image"].endswith("-gpu")
            assert node_type["max_workers"] >= 1
            _assert_pins(" ".join(node_type["worker_setup_commands"]))
            assert "whl/cpu" not in " ".join(node_type["worker_setup_commands"])

    def test_runtime_environment(self, launcher):
        _assert_pins(" ".join(launcher["setup_commands"]))
        assert any(re.search(r"pip install .*-e ~/clpipe", command) for command in launcher["setup_commands"])
        assert launcher["file_mounts"]["~/clpipe"] == "."
        assert ".venv" in launcher["rsync_exclude"]

    def test_every_node_uses_token_auth_and_an_mlflow_server(self, launcher):
        options = " ".join(launcher["docker"]["run_options"])
        assert "--env RAY_AUTH_MODE=token" in options
        tracking = re.search(r"--env MLFLOW_TRACKING_URI=(\S+)", options)
        assert tracking and tracking.group(1).startswith(("http://", "https://"))
        assert f"--volume {SHARED_MOUNT}:{SHARED_MOUNT}" in options
        start = launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]
        assert all("RAY_AUTH_MODE=token" in command for command in start if "ray start" in command)
        assert "~/.ray/auth_token" in launcher["file_mounts"]

    def test_entrypoints(self, launcher):
        _assert_entrypoint(launcher["metadata"]["entrypoint"])
        _assert_entrypoint(launcher["metadata"]["gpu_entrypoint"])
        assert "--gpu" in launcher["metadata"]["gpu_entrypoint"]


class TestKubeRay:
    def test_is_a_raycluster_for_the_installed_ray(self, kuberay):
        assert kuberay["apiVersion"] == "ray.io/v1"
        assert kuberay["spec"]["rayVersion"] == ray.__version__
        for name, container in _containers(kuberay).items():
            assert IMAGE.match(container["image"]), (name, container["image"])

    def test_cpu_and_gpu_worker_groups(self, kuberay):
        containers = _containers(kuberay)
        assert {"head", "cpu", "gpu"} <= set(containers)
        gpu = containers["gpu"]
        assert gpu["image"].endswith("-gpu")
        assert int(gpu["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        cpu = containers["cpu"]
        assert cpu["image"].endswith("-cpu")
        assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
        for container in containers.values():
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        groups = {group["groupName"]: group for group in kuberay["spec"]["workerGroupSpecs"]}
        assert groups["gpu"]["maxReplicas"] >= 1 and groups["cpu"]["maxReplicas"] >= 1

    def test_every_pod_installs_the_stack_then_starts_ray(self, kuberay):
        assert kuberay["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
        for name, container in _containers(kuberay).items():
            script = " ".join(container["args"])
            _assert_pins(script)
            assert "$CLPIPE_SOURCE" in script and "CLPIPE_SOURCE" in _env(container)
            assert script.rstrip().endswith("$KUBERAY_GEN_RAY_START_CMD"), name
            assert ("whl/cpu" in script) == (name != "gpu"), name

    def test_every_pod_uses_token_auth_an_mlflow_server_and_the_shared_volume(self, kuberay):
        for name, container in _containers(kuberay).items():
            env = _env(container)
            assert env["RAY_AUTH_MODE"]["value"] == "token", name
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token", name
            assert env["MLFLOW_TRACKING_URI"]["value"].startswith(("http://", "https://")), name
            assert {mount["mountPath"] for mount in container["volumeMounts"]} == {SHARED_MOUNT}, name

    def test_the_shared_volume_is_read_write_many(self):
        documents = list(yaml.safe_load_all((INFRA / "kuberay-raycluster.yaml").read_text()))
        (claim,) = [doc for doc in documents if doc["kind"] == "PersistentVolumeClaim"]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    def test_entrypoints(self, kuberay):
        annotations = kuberay["metadata"]["annotations"]
        _assert_entrypoint(annotations["clpipe/entrypoint"])
        _assert_entrypoint(annotations["clpipe/gpu-entrypoint"])
        assert "--gpu" in annotations["clpipe/gpu-entrypoint"]
