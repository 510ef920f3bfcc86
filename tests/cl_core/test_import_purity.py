"""cl_core must stay pure PyTorch + pyarrow: importing all of it loads no orchestration library."""

import subprocess
import sys


def test_cl_core_imports_no_orchestration_library():
    code = (
        "import pkgutil, importlib, sys, cl_core\n"
        "for module in pkgutil.walk_packages(cl_core.__path__, 'cl_core.'):\n"
        "    importlib.import_module(module.name)\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'prefect', 'mlflow', 'flows'})\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"cl_core pulled in: {result.stdout.strip()}"


def test_the_config_loads_without_torch():
    """The CLI validates a config and checks names before any training: reading the objectives
    table must not import the losses (about 2 s of torch)."""
    code = "import sys, cl_core.config\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pandas'}))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"cl_core.config pulled in: {result.stdout.strip()}"
