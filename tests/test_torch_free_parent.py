"""The CLI and server processes never import torch, diffusers or transformers: only the worker
does. Each check runs a real command in a fresh interpreter whose import system refuses those
packages (the worker, started with spawn, is a new interpreter without the refusal). Imports of
torch in the parent would create a CUDA context on a GPU machine, which CPU-only tests cannot
see; so the GPU case is run too, with the torch build read as a CUDA one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Finding torch's files (steady.request.devices reads its version file) is allowed; executing any
# of its modules is not.
BLOCK = textwrap.dedent(
    """
    import importlib.machinery
    import sys

    class RefusingLoader:
        def __init__(self, name):
            self.name = name

        def create_module(self, spec):
            raise ImportError("PARENT-IMPORTED-" + self.name)

        def exec_module(self, module):
            raise ImportError("PARENT-IMPORTED-" + self.name)

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] not in ("torch", "diffusers", "transformers"):
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None:
                spec.loader = RefusingLoader(name)
            return spec

    sys.meta_path.insert(0, Refuse())
    """
)
GPU_BUILD = textwrap.dedent(
    """
    import steady.request.devices as devices
    devices.torch_build = lambda version_file=None: devices.TorchBuild(version="2.13.0+cu121", cuda="12.1")
    devices._gpu_present = lambda build: True
    """
)


def run_script(tmp_path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "parent.py"
    script.write_text("if __name__ == '__main__':\n" + textwrap.indent(BLOCK + body, "    "))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)


def test_generate_runs_with_torch_refused_in_the_parent(tmp_path):
    done = run_script(tmp_path, textwrap.dedent(
        """
        from steady.cli import main
        try:
            main(["generate", "a red circle", "-n", "2", "--steps", "2", "-q", "--json"])
        finally:
            print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers")))
        """))  # fmt: skip
    assert "PARENT-IMPORTED" not in done.stderr + done.stdout
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"path"') == 2  # two images made by the worker
    assert "LOADED []" in done.stdout


def test_the_gpu_path_does_not_import_torch_in_the_parent(tmp_path):
    """Device cuda on a machine whose torch build says CUDA: the parent checks and plans (GPU
    figures from NVML or a short child probe) and never imports torch itself. Here no GPU is there,
    so the run is refused (exit 2) naming what is missing, after the parent has done its part."""
    done = run_script(tmp_path, GPU_BUILD + textwrap.dedent(
        """
        from steady.cli import main
        main(["generate", "a red circle", "--steps", "2", "--device", "cuda", "-q"])
        """))  # fmt: skip
    assert "PARENT-IMPORTED" not in done.stderr + done.stdout
    assert done.returncode == 2, done.stderr
    assert "steady: error:" in done.stderr


def test_the_server_runs_a_job_with_torch_refused(tmp_path):
    done = run_script(tmp_path, textwrap.dedent(
        """
        from steady.config import settings
        from steady.jobs.supervisor import SupervisorOptions
        from steady.params import GenerationRequest
        from steady.web.app import create_app
        from steady.web.studio import Studio, StudioOptions

        studio = Studio(settings(), StudioOptions(supervisor=SupervisorOptions(previews=True, threads=1)))
        create_app(studio, start_studio=False)  # the whole web app is imported and built
        studio.start()
        try:
            job = studio.submit(GenerationRequest("a red circle", steps=2))
            outcome = studio.wait(job.id, timeout=300)
            print("STATE", outcome.state, len(outcome.images))
        finally:
            studio.stop()
        """))  # fmt: skip
    assert "PARENT-IMPORTED" not in done.stderr + done.stdout
    assert "STATE done 1" in done.stdout, done.stderr
