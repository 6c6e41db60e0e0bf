"""2. The deploy loop on the local target, against a hand-written docker script.

Time from starting `fnctl deploy service NAME -f DIR --build-template T
--local --wait -o json` to the first good answer (HTTP 200 whose body holds
the marker of the current source version), for a first deploy (runtime and
function images absent), a redeploy after a one-line edit and a redeploy with
nothing changed.

The baseline does the equivalent by hand with the docker CLI: the very
contexts fnctl renders (runtime image and function Dockerfile, extracted to a
folder once, as a hand-written project would hold them), then
`docker image inspect RUNTIME || docker build RUNTIME`, `docker build`,
`docker rm -f OLD`, `docker run --network host`, and polling until the answer
is good. The baseline uses the classic builder (the one `docker build` has
here: no buildx plugin), so a template with secret parameters (go's GOPROXY &
co.) gets what a hand-written Dockerfile for the classic builder would hold:
the values as `--build-arg`s instead of BuildKit secret mounts (fnctl builds
those with BuildKit, as a user's deploy does). Both sides use the same tags
for the runtime image; each side tears everything down before the other side
starts, and the side that goes first alternates between repetitions.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import benchlib as b

BODY = b'{"text":"netadmin"}'

# template -> (source, file to edit, the line to edit, how the edited line reads with MARK)
SUBJECTS = {
    "bash": (b.ROOT / "examples/bash-echo", "function.sh", """RESPONSE="Echoing request: '$EVENT_DATA'\"""",
             """RESPONSE="Echoing request MARK: '$EVENT_DATA'\""""),
    "node4": (b.FUNCTIONS / "node-echo", "handler.js", 'const prefix = "";', 'const prefix = "MARK";'),
    "go": (b.FUNCTIONS / "go-echo", "main.go", 'const prefix = ""', 'const prefix = "MARK"'),
}
KINDS = ("first", "edit", "unchanged")


def _set_mark(folder: Path, template: str, mark: str) -> None:
    _, name, line, edited = SUBJECTS[template]
    original = (SUBJECTS[template][0] / name).read_text()
    assert line in original, (template, line)
    (folder / name).write_text(original.replace(line, edited.replace("MARK", mark), 1))


class Fnctl:
    label = "fnctl"

    def __init__(self, template: str, work: Path):
        self.template = template
        self.name = b.track_service(f"bench-deploy-{template}")
        self.src = work / "fnctl-src"
        shutil.copytree(SUBJECTS[template][0], self.src)
        self.runtime_tags: set[str] = set()

    def clean(self) -> None:
        b.delete_service(self.name)
        b.track_service(self.name)
        rt_ctx, _ = b.render(self.src, self.template)
        tag = f"fnctl-runtime/{self.template}:{rt_ctx.short_digest}"
        self.runtime_tags.add(tag)
        for t in self.runtime_tags:
            b.docker("rmi", t, check=False)

    def deploy(self, mark: str | None) -> dict:
        if mark is not None:
            _set_mark(self.src, self.template, mark)
        start = time.monotonic()
        out = b.sh([*b.FNCTL, "deploy", "service", self.name, "-f", str(self.src), "--build-template",
                    self.template, "--local", "--wait", "-o", "json"], timeout=900).stdout
        result = json.loads(out)
        port = int(result["url"].rsplit(":", 1)[1].strip("/"))
        b.wait_answer(port, BODY, lambda got: self.mark.encode() in got, deadline_s=60, pause=0.005)
        total = time.monotonic() - start
        phases = result.get("phases", {})
        return {"total": total, "built": result.get("built"), "unchanged": result.get("unchanged"),
                "phases": {**phases, "other": total - sum(phases.values())}}

    def teardown(self) -> None:
        self.clean()


class Baseline:
    label = "baseline"

    def __init__(self, template: str, work: Path):
        self.template = template
        src = work / "base-src"
        shutil.copytree(SUBJECTS[template][0], src)
        rt_ctx, _ = b.render(src, template)
        self.runtime = f"fnctl-runtime/{template}:{rt_ctx.short_digest}"
        _, fn_ctx = b.render(src, template, self.runtime)
        self.rt_dir = b.extract(rt_ctx, work / "base-runtime")
        self.dir = b.extract(fn_ctx, work / "base-function")
        self.build_args = b.classic_secrets(self.dir / "Dockerfile", b.template_secrets(src, template))
        self.port = b.free_port()
        self.generation = 0
        self.images: set[str] = set()

    def clean(self) -> None:
        for g in range(self.generation + 1):
            b.remove_container(f"bench-base-{self.template}-{g}")
        for t in [*self.images, self.runtime]:
            b.docker("rmi", t, check=False)
        self.images.clear()

    def deploy(self, mark: str | None) -> dict:
        if mark is not None:
            _set_mark(self.dir / "src", self.template, mark)
        phases: dict[str, float] = {}
        start = time.monotonic()
        with b.timed(phases, "build"):
            if not b.image_exists(self.runtime):
                b.build(self.rt_dir, self.runtime)
            tag = f"{b.IMG}/base-{self.template}:{self.mark}"
            self.images.add(tag)
            b.build(self.dir, tag, self.build_args)
        with b.timed(phases, "start"):
            b.remove_container(f"bench-base-{self.template}-{self.generation}")
            self.generation += 1
            b.run_container(tag, f"bench-base-{self.template}-{self.generation}", self.port)
        with b.timed(phases, "ready"):
            b.wait_answer(self.port, BODY, lambda got: self.mark.encode() in got, deadline_s=60, pause=0.005)
        total = time.monotonic() - start
        return {"total": total, "phases": phases}

    def teardown(self) -> None:
        self.clean()


def run(templates: list[str] | None = None) -> dict:
    present = [t for t in SUBJECTS if (b.ROOT / "buildtemplates" / t / "template.yaml").exists()]
    templates = [t for t in (templates or SUBJECTS) if t in present]
    results: dict = {"templates": {}, "skipped": [t for t in SUBJECTS if t not in present]}
    for template in templates:
        reps = b.reps(2 if template == "go" else 3, 1)
        work = Path(tempfile.mkdtemp(prefix=f"bench-deploy-{template}-"))
        sides = [Fnctl(template, work), Baseline(template, work)]
        runs: dict[str, dict[str, list[dict]]] = {s.label: {k: [] for k in KINDS} for s in sides}
        try:
            for i in range(reps):
                for side in (sides if i % 2 == 0 else sides[::-1]):
                    side.clean()
                    # A version no builder cache has seen, so the function image is really built; the
                    # runtime image is absent too, but the classic builder keeps its Go stage (the
                    # bridge compile) as an untagged image, so only its final stage is rebuilt.
                    side.mark = "f" + uuid.uuid4().hex[:8]
                    runs[side.label]["first"].append(side.deploy(side.mark))
                    side.mark = "e" + uuid.uuid4().hex[:8]  # a fresh one-line edit: a real rebuild
                    runs[side.label]["edit"].append(side.deploy(side.mark))
                    runs[side.label]["unchanged"].append(side.deploy(None))
                    side.teardown()
                    b.log(f"{template} rep {i} {side.label}: "
                          + ", ".join(f"{k} {runs[side.label][k][-1]['total']:.2f}s" for k in KINDS))
        finally:
            for side in sides:
                side.teardown()
            b.delete_service(sides[0].name)
            shutil.rmtree(work, ignore_errors=True)
        results["templates"][template] = {"reps": reps, "runs": runs, "median": {
            label: {k: _median_run(rs) for k, rs in kinds.items()} for label, kinds in runs.items()}}
    results["tables"] = report(results)
    b.save("deploy", results)
    return results


def _median_run(rs: list[dict]) -> dict:
    names = sorted({p for r in rs for p in r["phases"]})
    return {"total": b.median([r["total"] for r in rs]),
            "phases": {p: b.median([r["phases"].get(p) for r in rs]) for p in names},
            "built": [r.get("built") for r in rs], "unchanged": [r.get("unchanged") for r in rs]}


# fnctl's phases as `-o json` reports them on every target (fnctl.model.PHASES), and the rest.
PHASE_COLUMNS = ("source", "runtime", "build", "deploy", "wait", "other")


def report(res: dict) -> list[str]:
    rows, phase_rows = [], []
    for template, data in res["templates"].items():
        m = data["median"]
        for kind in KINDS:
            f, base = m["fnctl"][kind], m["baseline"][kind]
            note = ""
            if kind == "edit":
                note = " (target <= 1.2x)"
            if kind == "unchanged":
                skipped = all(x is False for x in f["built"])
                note = f" (target < 1.5 s, build skipped: {'yes' if skipped else 'NO'})"
            rows.append([template, kind, b.fmt(f["total"], " s"), b.fmt(base["total"], " s"),
                         b.ratio(f["total"], base["total"]) + note])
            fp, bp = f["phases"], base["phases"]
            phase_rows.append([template, kind, *(b.fmt(fp.get(p), " s") for p in PHASE_COLUMNS),
                               " / ".join(b.fmt(bp.get(p), " s") for p in ("build", "start", "ready"))])
    reps = ", ".join(f"{t} {d['reps']}" for t, d in res["templates"].items())
    tables = [b.table(f"Deploy loop on the local target: deploy to first good answer (median of {reps} runs)",
                      ["template", "deploy", "fnctl", "hand-written docker", "ratio"], rows),
              b.table("Deploy loop: fnctl's phases (from `-o json`; other = CLI start-up, target checks, the final "
                      "poll) and the baseline's build / start / ready",
                      ["template", "deploy", *PHASE_COLUMNS,
                       "baseline build / start / ready"], phase_rows)]
    if res["skipped"]:
        print(f"(skipped, no build template yet: {', '.join(res['skipped'])})")
    return tables
