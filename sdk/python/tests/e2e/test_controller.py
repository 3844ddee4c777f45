"""A Python agent through the real flowrun-controller on the real control plane.

The module starts its own world, as the C++ e2e suites do (tests/e2e/e2e_world.h):
a control plane in a private directory (tests/cluster/cluster.sh; ports picked
free, so it runs beside other cluster tests) whose nodesim maps the image
`flowrun/python-e2e*` to `<this python> -m flowrun run` over the build tree's
package and tests/agents, a private PostgreSQL and the fake LLM
(tests/support), and flowrun-controller as a child process. Everything is then
driven like a user would: the real kubectl (`apply`, `wait`, `patch`).

Scenario (agents/controller_review.py):
  review:   apply → Waiting on 'proceed' with the pydantic-derived schema in status.wait
            → patch true → a fresh Job → Waiting on 'approval' typed by the model Approval
            → an invalid answer (budget < 0, an extra key) is refused: AnswerAccepted=False/InvalidAnswer
              with the validator's reason, the run stays Waiting, no Job starts
            → a merge patch of the budget keeps the extra key: refused again, now naming it
            → the whole answer replaced (JSON patch) → a fresh Job → Succeeded, status.result typed;
              the checkpoint's LLM call was made once over three Jobs
  sign_off: a wait with a 15 s deadline and on_timeout="default": the controller resumes the run at
            the deadline and the flow gets the default model.

Run alone: ctest --test-dir build -R python_e2e_test (or pytest sdk/python/tests/e2e with
PYTHONPATH=build/python and FLOWRUN_BUILD_DIR=build).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from flowrun.wait import _schema_of
from support.agent import AGENTS, BUILD, PRICES, REPO

# The agent module as the pods import it (its directory on the path: it imports its sibling `basic`).
sys.path.insert(0, str(AGENTS))
from controller_review import NOBODY, SIGN_OFF_TIMEOUT_SECONDS, Approval  # noqa: E402
from support.fake_llm import FakeLlm
from support.postgres import PostgresServer, clean_env

CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
CONTROLLER = BUILD / "controller" / "flowrun-controller"
IMAGE = "flowrun/python-e2e:test"
WAIT = "120s"  # per phase; a warm run needs a few seconds


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _env_sh(path: Path) -> dict[str, str]:
    """KEY → value of the `export KEY='value'` lines cluster.sh writes (PATH excluded)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line and not line.startswith("export PATH="):
            k, v = line[len("export "):].split("=", 1)
            out[k] = v.strip("'")
    return out


class World:
    """The control plane, PostgreSQL, the fake LLM and the controller of this module."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flowrun-pye2e-"))
        self.cluster = self.dir / "cluster"
        self.watchdog: Optional[subprocess.Popen[bytes]] = None
        self.controller: Optional[subprocess.Popen[bytes]] = None
        self.pg = PostgresServer()
        self.llm: Optional[FakeLlm] = None
        self.kubeconfig = ""
        self.kubectl_bin = "kubectl"

    def start(self) -> None:
        assert CONTROLLER.exists(), f"{CONTROLLER} is missing: build flowrun-controller"
        build = subprocess.run([str(REPO / "tests/cluster/build.sh")], capture_output=True, text=True)
        assert build.returncode == 0, f"tests/cluster/build.sh failed:\n{build.stderr[-3000:]}"
        bin_dir = build.stdout.strip().splitlines()[-1]
        # The watchdog stops the cluster when this process dies in any way (its stdin's only writer).
        self.watchdog = subprocess.Popen(
            ["bash", "-c", 'read -r _ || true; "$0" stop "$1" >/dev/null 2>&1; rm -rf "$2"',
             str(CLUSTER_SH), str(self.cluster), str(self.dir)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # Absolute: the pods run in nodesim's directories, not in ours.
        package = os.environ.get("PYTHONPATH") or str(BUILD / "python")
        pythonpath = os.pathsep.join([os.path.abspath(p) for p in package.split(os.pathsep) if p] + [str(AGENTS)])
        image_map = self.dir / "image-map.yaml"
        image_map.write_text("images:\n"
                             f'  "flowrun/python-e2e*":\n'
                             f"    command: {json.dumps([sys.executable, '-m', 'flowrun', 'run'])}\n"
                             f"    env: {json.dumps({'PYTHONPATH': pythonpath, 'PYTHONDONTWRITEBYTECODE': '1'})}\n")
        env = dict(os.environ, FLOWRUN_NODESIM_ARGS=f"--image-map={image_map}")
        r = subprocess.run([str(CLUSTER_SH), "start", str(self.cluster)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"cluster.sh start failed:\n{r.stderr[-3000:]}"
        e = _env_sh(self.cluster / "env.sh")
        self.kubeconfig = e["KUBECONFIG"]
        self.kubectl_bin = str(Path(e.get("FLOWRUN_CLUSTER_BIN", bin_dir)) / "kubectl")

        self.pg.start()
        self.llm = FakeLlm()
        self.kubectl("apply", "-f", str(REPO / "crds"))
        deadline = time.monotonic() + 60
        while True:  # Established, and served (discovery)
            ok = (self.kubectl_result("wait", "--for=condition=Established", "--timeout=10s",
                                      "crd/flowruns.flowrun.dev").returncode == 0 and
                  self.kubectl_result("get", "flowruns").returncode == 0)
            if ok:
                break
            assert time.monotonic() < deadline, "the FlowRun CRD is not served 60 s after kubectl apply -f crds/"
            time.sleep(0.2)
        # Secrets from stdin, never on a command line.
        secrets = {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flowrun-db"},
             "stringData": {"url": self.pg.url("postgres")}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai"},
             "stringData": {"api-key": "sk-pye2e"}}]}
        self.kubectl("apply", "-f", "-", input=json.dumps(secrets))

        self.controller_log = self.dir / "controller.log"
        self.controller = subprocess.Popen(
            [str(CONTROLLER), "--kubeconfig", self.kubeconfig, "--database-url-env", "FLOWRUN_PYE2E_DATABASE_URL",
             "--workers", "2", "--health-addr", "127.0.0.1:0", "--price-table-path", str(PRICES)],
            env=dict(clean_env(), FLOWRUN_PYE2E_DATABASE_URL=self.pg.url("postgres")),
            stdout=open(self.controller_log, "wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while b'"informers synced"' not in self.controller_log.read_bytes():
            assert self.controller.poll() is None, f"the controller exited:\n{self.controller_log.read_text()}"
            assert time.monotonic() < deadline, f"the controller did not sync:\n{self.controller_log.read_text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.controller is not None and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(30)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait()
        if self.llm is not None:
            self.llm.stop()
        self.pg.stop()
        if self.watchdog is not None:
            if os.environ.get("FLOWRUN_KUBE_KEEP"):
                print(f"keeping {self.dir}", file=sys.stderr)
            assert self.watchdog.stdin is not None
            self.watchdog.stdin.close()  # EOF: the watchdog stops the cluster and removes the directory
            self.watchdog.wait(120)

    # --- kubectl, the way a user runs it ---
    def kubectl_result(self, *args: str, input: Optional[str] = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.kubectl_bin, *args], input=input, capture_output=True, text=True,
                              env=dict(os.environ, KUBECONFIG=self.kubeconfig))

    def kubectl(self, *args: str, input: Optional[str] = None) -> str:
        r = self.kubectl_result(*args, input=input)
        assert r.returncode == 0, f"kubectl {' '.join(args)} failed: {r.stderr}"
        return r.stdout

    def flowrun(self, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "flowrun", name, "-o", "json"))

    def diagnostics(self, name: str) -> str:
        return (self.kubectl_result("get", "flowrun", name, "-o", "yaml").stdout +
                self.kubectl_result("get", "jobs,pods", "-o", "wide", "-l", f"flowrun.dev/run={name}").stdout +
                "\ncontroller log tail:\n" + self.controller_log.read_text()[-4000:])

    def wait_for(self, name: str, condition: str) -> None:
        """kubectl wait --for=<condition> on flowrun/<name>; fails with the run, its Jobs and the controller's log."""
        r = self.kubectl_result("wait", f"--for={condition}", f"--timeout={WAIT}", f"flowrun/{name}")
        assert r.returncode == 0, f"FlowRun {name}: {condition} not reached: {r.stderr}\n{self.diagnostics(name)}"

    def eventually(self, name: str, predicate: Any, what: str) -> dict[str, Any]:
        """The FlowRun once `predicate(flowrun)` holds (polled; fails after WAIT with diagnostics)."""
        deadline = time.monotonic() + int(WAIT.rstrip("s"))
        while True:
            run = self.flowrun(name)
            if predicate(run):
                return run
            assert time.monotonic() < deadline, f"FlowRun {name}: {what} not reached\n{self.diagnostics(name)}"
            time.sleep(0.2)

    def jobs(self, name: str) -> list[str]:
        out = self.kubectl("get", "jobs", "-l", f"flowrun.dev/run={name}", "-o",
                           "jsonpath={range .items[*]}{.metadata.name}{'\\n'}{end}")
        return sorted(line for line in out.splitlines() if line)

    def waits(self, uid: str) -> list[tuple[str, Any, str]]:
        """(name, answer, answered_by) of the run's waits in PostgreSQL, by name."""
        out = self.pg.psql("postgres", "SELECT name, answer, answered_by FROM flowrun.waits "
                                       "WHERE run_uid = :'uid' ORDER BY name", uid=uid)
        return [(r.split("|")[0], json.loads(r.split("|")[1]) if r.split("|")[1] else None, r.split("|")[2])
                for r in out.splitlines() if r]

    def apply_run(self, name: str, target: str, parameters: dict[str, Any]) -> None:
        assert self.llm is not None
        run = {"apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
               "spec": {"template": {"image": IMAGE, "args": [target],
                                     "env": [{"name": "OPENAI_BASE_URL", "value": self.llm.base_url},
                                             {"name": "OPENAI_API_KEY",
                                              "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}}},
                                             {"name": "FLOWRUN_LLM_MODEL", "value": "gpt-4o-mini"}]},
                        "parameters": parameters, "flow": "python-e2e", "budgetUSD": 1.0,
                        "retry": {"maxAttempts": 3},
                        "database": {"secretRef": {"name": "flowrun-db"}}}}
        path = self.dir / f"{name}.json"
        path.write_text(json.dumps(run))
        self.kubectl("apply", "-f", str(path))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    try:
        w.start()
        yield w
    finally:
        w.stop()


def _condition(run: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in run.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return {}


def _time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_typed_waits_an_invalid_answer_and_a_default_at_the_deadline_through_the_controller(world: World) -> None:
    assert world.llm is not None
    # The deadline run first: its 15 s run out while the other run is answered.
    world.apply_run("sign-off", "controller_review:sign_off", {})
    world.apply_run("review", "controller_review:review", {"topic": "pye2e"})

    # 1. Waiting on 'proceed': the schema is pydantic's for bool, as the SDK records it.
    world.wait_for("review", "jsonpath={.status.phase}=Waiting")
    run = world.flowrun("review")
    w = run["status"]["wait"]
    assert w["name"] == "proceed"
    assert w["question"] == "The plan for pye2e is drafted. Ask for approval?"
    assert w["schema"] == {"type": "boolean"}
    assert "deadline" not in w
    assert world.jobs("review") == ["review-a1"]

    # The deadline run is Waiting with its deadline and policy in status.wait.
    world.wait_for("sign-off", "jsonpath={.status.wait.name}=sign-off")
    sw = world.flowrun("sign-off")["status"]
    # askedAt is when the agent asked: the deadline is 15 s after it, and the controller shows the
    # wait as soon as the pod exited (a couple of seconds), so the run is still Waiting here.
    assert sw["phase"] == "Waiting", sw
    assert sw["wait"]["onTimeout"] == "default"
    asked, sign_off_deadline = _time(sw["wait"]["askedAt"]), _time(sw["wait"]["deadline"])
    assert abs((sign_off_deadline - asked).total_seconds() - SIGN_OFF_TIMEOUT_SECONDS) <= 1, sw["wait"]
    assert sw["wait"]["schema"] == json.loads(_schema_of(Approval, None)[1])

    # 2. A bool through the status subresource → a fresh Job → Waiting on 'approval', typed by the model.
    world.kubectl("patch", "flowrun", "review", "--subresource=status", "--type=merge",
                  "-p", '{"status":{"answers":{"proceed":true}}}')
    world.wait_for("review", "jsonpath={.status.wait.name}=approval")
    world.wait_for("review", "jsonpath={.status.phase}=Waiting")
    run = world.flowrun("review")
    schema = run["status"]["wait"]["schema"]
    assert schema == json.loads(_schema_of(Approval, None)[1])  # what the SDK derived from pydantic
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["approved", "budget", "reviewer"]
    assert schema["properties"]["approved"]["type"] == "boolean"
    assert schema["properties"]["budget"]["type"] == "number" and schema["properties"]["budget"]["minimum"] == 0
    assert schema["properties"]["reviewer"]["minLength"] == 1
    assert world.jobs("review") == ["review-a1", "review-a2"]
    accepted = _condition(run, "AnswerAccepted")
    assert accepted.get("status") == "True" and "proceed" in accepted.get("message", ""), accepted

    # 3. An invalid answer (a negative budget, and a key the model forbids) is refused by the C++
    #    validator: the run stays Waiting.
    world.kubectl("patch", "flowrun", "review", "--subresource=status", "--type=merge", "-p",
                  json.dumps({"status": {"answers": {"approval": {"approved": True, "reviewer": "ann",
                                                                  "budget": -5, "comment": "cheap"}}}}))
    world.wait_for("review", "condition=AnswerAccepted=False")
    run = world.flowrun("review")
    refused = _condition(run, "AnswerAccepted")
    assert refused["reason"] == "InvalidAnswer", refused
    assert "the answer to 'approval' does not match its schema" in refused["message"], refused
    # The validator's reason, naming the field: "/budget: Expected number greater than or equal to 0...".
    assert "/budget: Expected number greater than or equal to 0" in refused["message"], refused
    assert run["status"]["phase"] == "Waiting"
    assert "patch a corrected answer" in run["status"]["message"], run["status"]["message"]
    assert run["status"]["wait"]["name"] == "approval"
    assert world.jobs("review") == ["review-a1", "review-a2"]

    # 4. A merge patch of the budget alone keeps the rejected object's other keys: still refused, now for
    #    'comment' (docs/flowrun-api.md, correcting answers).
    world.kubectl("patch", "flowrun", "review", "--subresource=status", "--type=merge", "-p",
                  '{"status":{"answers":{"approval":{"budget":12.5}}}}')
    run = world.eventually("review", lambda r: "'comment'" in _condition(r, "AnswerAccepted").get("message", ""),
                           "AnswerAccepted names 'comment'")
    assert run["status"]["answers"]["approval"] == {"approved": True, "reviewer": "ann", "budget": 12.5,
                                                    "comment": "cheap"}
    assert _condition(run, "AnswerAccepted")["status"] == "False"
    assert run["status"]["phase"] == "Waiting" and world.jobs("review") == ["review-a1", "review-a2"]

    # 5. The corrected answer replaces the whole object (a JSON patch) → a fresh Job → Succeeded.
    corrected = {"approved": True, "reviewer": "ann", "budget": 12.5}
    world.kubectl("patch", "flowrun", "review", "--subresource=status", "--type=json", "-p",
                  json.dumps([{"op": "replace", "path": "/status/answers/approval", "value": corrected}]))
    world.wait_for("review", "jsonpath={.status.phase}=Succeeded")
    run = world.flowrun("review")
    result = json.loads(run["status"]["result"])
    assert result.pop("plan_chars") > 0, result
    assert result == {"status": "approved", "reviewer": "ann", "budget": 12.5}
    assert isinstance(result["budget"], float)
    assert world.jobs("review") == ["review-a1", "review-a2", "review-a3"]
    accepted = _condition(run, "AnswerAccepted")
    assert accepted.get("status") == "True" and "approval" in accepted.get("message", ""), accepted
    # PostgreSQL recorded the answers kubectl gave: the bool, and the corrected model (not the refused one).
    assert world.waits(run["metadata"]["uid"]) == [
        ("approval", corrected, "kubernetes:kubectl-patch"), ("proceed", True, "kubernetes:kubectl-patch")]
    # The checkpoint's LLM call was made once over three Jobs: the resumed ones took it from PostgreSQL.
    prompts = world.llm.stats()["by_prompt"]
    assert prompts.get("Research pye2e") == 1, prompts

    # 6. Nobody signs off: at the deadline the controller resumes the run and the wait returns its default.
    world.wait_for("sign-off", "jsonpath={.status.phase}=Succeeded")
    run = world.flowrun("sign-off")
    assert json.loads(run["status"]["result"]) == NOBODY.model_dump(), run["status"]
    assert "answers" not in run["status"] or "sign-off" not in run["status"]["answers"]
    assert world.jobs("sign-off") == ["sign-off-a1", "sign-off-a2"]
    assert world.waits(run["metadata"]["uid"]) == [("sign-off", NOBODY.model_dump(), "timeout-default")]
    # Resumed by the deadline: the second attempt started at it, not before.
    second = [a for a in run["status"]["attempts"] if a["attempt"] == 2]
    assert second and _time(second[0]["startTime"]) >= sign_off_deadline, run["status"]["attempts"]
