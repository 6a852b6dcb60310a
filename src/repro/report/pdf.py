"""Stage 7: the PDF report. Tables (CSV), figures (SVG), provenance (JSON) and the
runs' histories go through a jinja2 template to HTML, which weasyprint turns into a
PDF with a table of contents, page numbers and vector figures.

The report reads the CSVs the tables stage wrote, so the PDF shows the same numbers
as ``results/tables``; it recomputes only what is purely descriptive (the logits-head
ablation summary and the architecture table).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2

from ..files import read_json, require, write_atomic
from ..plan import grid, paper
from ..plan.architecture import architecture_table
from ..plan.recorded import check_provenance
from ..plan.settings import ModelSpec, RunConfig
from ..plan.variants import REFERENCE
from ..text import joined
from . import claims as claims_mod
from . import evidence, stats, why
from .figures import FIGURES
from .study import load_study
from .tables import read_tables
from .wording import over_seeds, phrases

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "report_templates"

CAPTIONS = {
    "fig2_loss": "Fig. 2: Training and test loss per epoch",
    "fig3_accuracy": "Fig. 3: Training and test accuracy per epoch",
    "fig4_confusion": "Fig. 4: Test performance (confusion heatmap)",
    "fig5_timing": "Fig. 5: Training time per 5 epochs by device",
    "fig6_effects": "Fig. 6: What each candidate cause does to test accuracy",
    "fig7_train_test": "Fig. 7: Train against test accuracy, per run and variant",
    "fig8_jpeg_cost": "Fig. 8: The JPEG cost each comparison with the paper needs",
}


# ---- formatting helpers (jinja filters) ------------------------------------------


def num(value, digits: int = 2) -> str:
    """A number with fixed decimals; blank-safe ('-' for missing)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else "–"
    if math.isnan(v):
        return "–"
    return f"{v:,.{digits}f}"


def signed(value, digits: int = 2) -> str:
    text = num(value, digits)
    return text if text.startswith(("-", "–")) else "+" + text


def pval(value) -> str:
    v = float(value)
    if math.isnan(v):
        return "–"
    # three significant digits, as the claims quote it (0.00147): one p value reads the same
    # in every table
    return "< 0.0001" if v < 0.0001 else f"{v:.3g}"


def units(text) -> str:
    """A number and its unit kept on one line: "86.07 %" never wraps before the "%"."""
    return str(text).replace(" %", "\u00a0%")


def basename(path) -> str:
    """A file's name without the folders: the report names files, not local paths."""
    return Path(str(path)).name


def project_path(path) -> str:
    """A path inside the project as given (results/config.json); an absolute one, which
    would show a local folder, by its name only."""
    return Path(str(path)).name if Path(str(path)).is_absolute() else str(path)


def public_config(cfg: dict) -> dict:
    """The resolved config as Appendix A prints it: file paths of the data that lie
    outside the project (an absolute archive path names a local folder) by name only."""
    out = json.loads(json.dumps(cfg))
    data = out.get("data") or {}
    for key in ("archive", "folder", "download_root"):
        if data.get(key):
            data[key] = project_path(data[key])
    return out


def config_rows(cfg: dict) -> list[tuple[str, str]]:
    """The resolved config as Appendix A summarises it: one row per section, its settings
    as "key value" pairs (nested ones as key.sub); the full JSON is attached to the PDF."""
    rows = []
    for section, value in cfg.items():
        if isinstance(value, dict):
            rows.append((section, "; ".join(f"{k} {v}" for k, v in _flat(value))))
        else:
            rows.append((section, _plain(value)))
    return rows


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", _plain(v)


def _plain(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "none"
    return "none" if v is None else str(v)


def training_versions(prov: dict) -> str:
    """The torch (and CUDA) the runs trained with, as their metrics.json recorded them,
    which need not be the report machine's."""
    seen = sorted({str(j.get("torch")) for j in prov.get("jobs", []) if j.get("torch")})
    return ", ".join(f"torch {v}" for v in seen) or "unknown"


def integer(value) -> str:
    return f"{int(value):,}"


# ---- content ------------------------------------------------------------------------


def architecture(cfg: dict, head: str) -> dict:
    spec = RunConfig.from_config(cfg, head, 1.0, "cpu", 0).model
    rows = architecture_table(spec)
    total = sum(r.params for r in rows)
    return {
        "rows": rows,
        "params": total,
        "macs": sum(r.macs for r in rows),
        "default_widths": spec.widths == ModelSpec().widths and spec.hidden == ModelSpec().hidden,
    }


def ablation(study) -> list[dict]:
    """Softmax vs logits head per learning rate: accuracy, loss scale, convergence."""
    if len(study.heads()) < 2:
        return []
    rows = []
    for head, device, lr, runs in study.groups():
        h = study.mean_history(head, device, lr)
        target = 0.95 * h.test_acc.max()
        rows.append(
            {
                "head": head,
                "device": device,
                "lr": lr,
                "final_test_acc": runs.final_test_acc.mean(),
                "final_train_loss": runs.final_train_loss.mean(),
                "final_test_loss": runs.final_test_loss.mean(),
                "epochs_to_95": int(h.epoch[h.test_acc >= target].iloc[0]),
                "epochs": int(h.epoch.max()),
            }
        )
    lrs, heads = study.lr_order(), study.heads()
    return sorted(rows, key=lambda r: (r["device"], lrs.index(r["lr"]), heads.index(r["head"])))


def findings(cfg, tables, study, reasons) -> list[str]:
    out = []
    acc = tables["test_accuracy.csv"]
    first = acc[acc["head"] == study.heads()[0]]
    best = first.loc[first.final_mean.idxmax()]
    kinds = first.verdict.map(claims_mod.kind)
    inside = (kinds == claims_mod.HOLDS).sum()
    judged = kinds.isin([claims_mod.HOLDS, claims_mod.FAILS]).sum()
    allowed = sum(map(claims_mod.needs_cost, first.verdict))
    out.append(
        f"Best mean final test accuracy ({best['head']} head): {best.final_mean:.2f} % at"
        f" lr {best.lr} ({over_seeds(int(best.n_seeds))}), against the paper's"
        f" {num(best.paper)} % for that rate; the paper's single run lies where one more run of"
        f" ours would land ({cfg['report']['confidence']:.0%} interval, Table 4) for {inside} of"
        f" {judged} learning rates"
        + (
            f" ({allowed} of them only if our JPEG images cost at least their break-even, Table 4)."
            if allowed
            else "."
        )
    )
    comp = tables["lr_comparison.csv"]
    comp = comp[comp["head"] == study.heads()[0]]
    if len(comp):
        out.append(pairs_finding(comp))
    floor = tables["loss_floor.csv"]
    soft = floor[(floor.source == "measured") & (floor["head"] == "softmax")]
    if len(soft):
        r, s = soft.iloc[0], seed_loss(floor)
        out.append(
            "With the faithful softmax head the loss cannot go below"
            f" {stats.softmax_ce_floor():.3f}; at lr {r.lr} our final test loss is"
            f" {r.final_test_loss:.3f} where a confident"
            f" classifier with the measured {r.final_test_acc:.1f} % accuracy would have"
            f" {r.expected_test_loss:.3f}. The seed's {s['train']} / {s['test']} match the"
            f" expected {s['expected_train']:.3f} / {s['expected_test']:.3f} at its"
            f" {s['train_acc']:g} % / {s['test_acc']} % accuracy, so it evidently applied"
            " CrossEntropyLoss to a Softmax output."
        )
    c = tables["claims.csv"]
    counts = {v: int((c.verdict.map(claims_mod.kind) == v).sum()) for v in claims_mod.VERDICTS}
    out.append(
        f"Of the seed's {len(c)} checked claims: {counts[claims_mod.HOLDS]} hold,"
        f" {counts[claims_mod.FAILS]} do not hold, {counts[claims_mod.INCONCLUSIVE]}"
        f" inconclusive, {counts[claims_mod.NOT_MEASURABLE]} not measurable with this"
        " config (Section 9)."
    )
    if reasons:
        out.append(
            "This run is not comparable to the paper ("
            + "; ".join(reasons)
            + "): its numbers test the pipeline, not the paper's results."
        )
    return out


def pairs_finding(comp) -> str:
    """The learning-rate pairs that differ, with the noise their test can see: over seeds,
    the seeds' spread; with one run per rate, only the test images' noise, so a difference
    is one between two trained networks, not yet between learning rates."""
    sig = comp[~comp.conclusion.str.startswith("inconclusive")]
    one_run = comp.test.isin([stats.MCNEMAR, stats.Z_TEST]).any()
    noise = (
        "the test images' noise (one run per rate: two trained networks differ, not yet two"
        " learning rates)"
        if one_run
        else "the seeds' noise"
    )
    # the sentence says "two trained networks" once, not once per pair
    pairs = [c.removeprefix("these two runs differ: ") for c in sig.conclusion]
    return (
        f"Pairwise learning-rate comparison ({comp.test.iloc[0].split(' (')[0]},"
        f" Holm-adjusted): {len(sig)} of {len(comp)} pairs differ beyond {noise}"
        + (": " + "; ".join(pairs) + "." if pairs else ".")
    )


RECORDED_FIELDS = ("label", "folder", "gpu", "commit", "date", "driver", "torch", "cuda")
RECORDED_FIELDS += ("cudnn", "python", "command", "data_sha256")


def recorded(prov: dict, cfg: dict | None = None) -> dict | None:
    """What page 1 and Appendix A say about recorded runs; None when the runs were trained.
    A recording finished over several GPU sessions lists each (GPU, commit, date, command,
    and its runs: learning rates, named by variant where ``cfg`` has one of that hash)."""
    rec = prov.get("recorded")
    if not isinstance(rec, dict):
        return None
    out = {k: str(rec.get(k) or "unknown") for k in RECORDED_FIELDS}
    sessions = rec.get("sessions") or [rec]
    by_session: dict[int, dict[str, list[str]]] = {}
    for r in rec.get("runs") or []:
        if r.get("complete"):
            runs = by_session.setdefault(int(r.get("session") or 1), {})
            runs.setdefault(_variant_of_folder(cfg, r.get("folder")), []).append(str(r.get("lr")))
    gpus = [str(x.get("gpu") or "unknown") for x in sessions]
    several = len(set(gpus)) > 1
    out["gpu"] = " and ".join(dict.fromkeys(gpus))
    out["sessions"] = [
        {
            "gpu": gpu,
            # with one GPU, page 1 names it once; with several, each session its own
            "prefix": f"{gpu}: " if several else "",
            "commit": trained_commit(x),
            "date": str(x.get("date") or "unknown"),
            "command": str(x.get("command") or "unknown"),
            "runs": "; ".join(
                f"{'' if v == REFERENCE else v + ' '}lr {', '.join(lrs)}"
                for v, lrs in by_session.get(i, {}).items()
            )
            or "none finished",
        }
        for i, (x, gpu) in enumerate(zip(sessions, gpus, strict=True), start=1)
    ]
    return out


def _variant_of_folder(cfg: dict | None, folder) -> str:
    """The variant of a recorded run folder's hash in ``cfg`` (the reference if unknown)."""
    m = grid.RUN_DIR_PATTERN.fullmatch(str(folder or ""))
    if cfg is None or not m:
        return REFERENCE
    return grid.variant_of(cfg, m["device"], m["hash"]) or REFERENCE


def trained_commit(session: dict) -> str:
    """The code a recorded session trained with, as its provenance states it: the commit,
    marked dirty where the tree had uncommitted changes, and the relabelling where the
    recording named another commit."""
    trained = str(session.get("trained_at") or session.get("commit") or "unknown")[:12]
    text = trained + (" (dirty tree)" if session.get("dirty") is True else "")
    named = str(session.get("commit") or "")[:12]
    if named and named != trained:
        text += f", relabelled {named} when recorded"
    return text


def run_code(prov: dict) -> dict:
    """Per training job, the code that trained it (metrics.json's commit, dirty flag and
    run-code hash), and whether the study's runs came from more than one commit or code."""
    rows, stale = [], []
    for j in prov.get("jobs", []):
        code = j.get("code") or {}
        row = {
            "commit": str(code.get("commit") or "not recorded")[:12],
            "dirty": {True: "dirty", False: "clean"}.get(code.get("dirty"), "unknown"),
            "code": str(code.get("code_sha256") or "not recorded")[:12],
        }
        checked = str(j.get("code_checked") or "")[:12]
        if checked and checked != row["commit"]:
            # the training machine's .git was older than its tree: the hash names the code
            stale.append(f"{row['commit']} ({row['dirty']}) -> {checked}")
            row.update(commit=f"{checked}*", dirty="run code checked")
        elif checked and row["dirty"] == "dirty":
            row["dirty"] = "dirty; run code as committed"
        rows.append(row)
    commits = {r["commit"].rstrip("*") for r in rows if r["commit"] != "not recorded"}
    hashes = {r["code"] for r in rows if r["code"] != "not recorded"}
    unrecorded = sum(r["commit"] == "not recorded" for r in rows)
    if len(commits) > 1:
        same = "the same" if len(hashes) == 1 else "different"
        note = f"The runs came from {len(commits)} commits, with {same} run-shaping code."
    elif not commits:
        note = "The runs' metrics.json carry no commit (trained before runs recorded it)."
    elif unrecorded:
        # one commit among the runs that name one says nothing of the others
        note = (
            f"{len(rows) - unrecorded} of {len(rows)} runs name their commit; the other"
            f" {unrecorded} were trained before runs recorded it."
        )
    else:
        note = "All runs came from one commit."
    if stale:
        note += (
            " *: the training machine's git checkout named an older commit than the tree it"
            " held; the run's code hash equals that of the starred commit's run-shaping"
            " modules in this repository (" + "; ".join(dict.fromkeys(stale)) + ")."
        )
    return {"rows": rows, "note": note, "dirty": any(r["dirty"] == "dirty" for r in rows)}


def machines(runs) -> dict[str, str]:
    """Variant -> the machines and arithmetic its runs trained with ("NVIDIA H100 80GB
    HBM3, bf16"), for the captions of figures that plot them: variants recorded in other
    GPU sessions may differ in both."""
    out = {}
    for variant, sel in runs.groupby("variant", sort=False):
        out[variant] = (
            f"{joined(sel.device_name)}, {', '.join(dict.fromkeys(sel.precision.astype(str)))}"
        )
    return out


def _listed(values) -> str:
    return ", ".join(map(str, values))


def seed_loss(floor) -> dict:
    """The seed's final losses next to those a confident classifier at its accuracies has
    (the loss-floor table's paper row): they match, which shows it applied
    CrossEntropyLoss to a Softmax output."""
    row = floor[floor.source == "paper"].iloc[0]
    return {
        "train": row.final_train_loss,
        "test": row.final_test_loss,
        "train_acc": row.final_train_acc,
        "test_acc": row.final_test_acc,
        "expected_train": row.expected_train_loss,
        "expected_test": row.expected_test_loss,
    }


# The seed's text against what we had to choose: the architecture and the recipe.
STATED_ASSUMED = [
    ("blocks", "6 blocks, each 3 parallel convolutions, BatchNorm, ReLU", "as stated", "stated"),
    ("block widths", "not given", _listed(paper.WIDTHS), "assumed"),
    (
        "kernel sizes",
        '"different kernel sizes"',
        f"{_listed(paper.KERNEL_SIZES)} (padding k/2)",
        "assumed",
    ),
    ("branch weighting", "a vector from an MLP", "softmax(Linear(C_in, 3)) of the mean", "assumed"),
    (
        "pooling",
        f"2x2 max pool after blocks {_listed(paper.POOL_AFTER)}; average pool",
        "as stated",
        "stated",
    ),
    ("classifier", "Flatten, Linear, ReLU, BN, Dropout, Linear, Softmax", "as stated", "stated"),
    ("hidden units, dropout", "not given", f"{paper.HIDDEN}, {paper.DROPOUT}", "assumed"),
    (
        "loss, optimiser",
        f"CrossEntropyLoss; SGD, momentum {paper.MOMENTUM},"
        f" wd {paper.as_written(paper.WEIGHT_DECAY)}",
        "as stated",
        "stated",
    ),
    ("initialisation", "default (Kaiming)", "PyTorch defaults", "stated"),
    ("augmentation", "crop 32, padding 4, horizontal flip", "zero padding, p = 0.5", "assumed"),
    ("normalisation", '"normalisation" (values not given)', "CIFAR-10 mean / std", "assumed"),
]

# The seed's own slips, so that a reader comparing the two documents is not misled.
ERRATA = [
    'Its Section 4 lists the learning rates as "0.01, 0.001 and 0.001"; its Tables 1-3 and'
    " Table 4 show the three rates are 0.01, 0.005 and 0.001.",
    "Its text calls the accuracy figure Fig. 2 and the loss figure Fig. 3, the other way round"
    " from its captions; here Fig. 2 is the loss and Fig. 3 the accuracy.",
    "Its introduction names nine classes (trucks, frogs, horses, deer, dogs, cats, birds,"
    " ships, cars); CIFAR-10 also has airplanes.",
    'Its "misclassification rate ranging from 78% to 83.8%" for dog and cat can only be the'
    " heatmap's diagonal (per-class accuracy); we check it as that (Section 9).",
]

HEADLINE_KEYS = ("best_lr", "final_gap", "catdog_lowest", "train_loss", "test_loss")
HEADLINE_KEYS += ("overfit_onset", "catdog_pair", "catdog_range")


def headline(claims, cost=None) -> tuple[list[dict], str]:
    """Page 1: the seed's headline numbers with ours and the verdict, and one sentence;
    ``cost``: the range our images may cost (deviations.Cost), or None."""
    keys = [k for k in claims.key if k.startswith("table4_")] + list(HEADLINE_KEYS)
    rows = [r for k in keys for r in claims[claims.key == k].to_dict("records")]
    counts = {v: sum(claims_mod.kind(r["verdict"]) == v for r in rows) for v in claims_mod.VERDICTS}
    n = len(rows)
    if counts[claims_mod.NOT_MEASURABLE] == n:
        sentence = (
            "Not decided: this configuration does not train the seed's setup, so none of its"
            " headline numbers can be judged here."
        )
    elif counts[claims_mod.HOLDS] == n:
        sentence = f"Yes: all {n} headline findings of the seed hold."
        if any(r["verdict"] != claims_mod.HOLDS for r in rows):
            sentence += " Some only if our JPEG images cost enough, as their verdicts say."
    else:
        needing = [r for r in rows if claims_mod.needs_cost(r["verdict"])]
        # a finding that holds only with a cost of our images is counted apart from those
        # that hold without it: nobody measured that cost here
        plain = counts[claims_mod.HOLDS] - len(needing)
        holds = f"{plain} hold" + (" without a JPEG cost" if cost else "")
        if needing:
            its = "its" if len(needing) == 1 else "their"
            holds += (
                f", {len(needing)} only if our JPEG images cost at least {its} break-even,"
                f" {_costs(needing)} points" + (f" ({cost.word}: {cost.text()})" if cost else "")
            )
        sentence = (
            f"In part. Of the seed's {n} headline findings: {holds},"
            f" {counts[claims_mod.FAILS]} do not hold, {counts[claims_mod.INCONCLUSIVE]}"
            f" inconclusive, {counts[claims_mod.NOT_MEASURABLE]} not measurable here."
            f" {table4_sentence([r for r in rows if r['key'].startswith('table4_')], cost)}"
        ).rstrip()
    return rows, sentence


def _costs(rows: list[dict]) -> str:
    """The break-even costs of some verdicts: "2.52", or "0.17 to 2.52" for several."""
    b = sorted(float(r["break_even"]) for r in rows)
    return f"{b[0]:.2f}" if len(b) == 1 or b[0] == b[-1] else f"{b[0]:.2f} to {b[-1]:.2f}"


def table4_sentence(t4: list[dict], cost=None) -> str:
    """Page 1's words on Table 4 without a cost range (lossless images, or a copy of
    unknown cost): how many of its accuracies lie outside the range one more run of ours
    would fall in. With one, none: each row's verdict names its break-even cost."""
    decided = (claims_mod.HOLDS, claims_mod.FAILS)
    judged = [r for r in t4 if claims_mod.kind(r["verdict"]) in decided]
    if not judged or cost is not None:
        # with a cost range, each row's verdict names its break-even (the table below)
        return ""
    fail = sum(claims_mod.kind(r["verdict"]) == claims_mod.FAILS for r in judged)
    return (
        f"Of Table 4's {len(judged)} accuracies, {fail} {'lies' if fail == 1 else 'lie'}"
        " outside the range one more run of ours would fall in."
    )


def context(config, runs, timing, tables_dir, figures_dir, provenance) -> dict:
    """What the template reads, from the study's inputs and the earlier stages' outputs."""
    study = load_study(config, runs, timing)
    cfg = study.config
    tables = read_tables(tables_dir)
    for name in ("test_accuracy.csv", "loss_floor.csv"):
        tables[name]["lr"] = tables[name]["lr"].map(lambda v: f"{float(v):g}" if v == v else "")
    comp = tables["lr_comparison.csv"]
    for col in ("lr_a", "lr_b"):
        comp[col] = comp[col].map(lambda v: f"{float(v):g}")
    prov = read_json(provenance, "provenance", "run `python -m repro provenance`")
    if prov.get("recorded") is not None:  # what page 1 says of the recording: checked
        check_provenance(prov["recorded"], f"provenance {provenance}: its recorded part")
    study.data = prov.get("data", {})
    figures = {}
    for name in FIGURES:
        svg = Path(figures_dir) / f"{name}.svg"
        require(svg, "figure", "run `python -m repro figures` first")
        figures[name] = svg.resolve().as_uri()
    reasons = claims_mod.comparability(cfg)
    heads = study.heads()
    conf_head, _, conf_lr = study.reference()
    noise = claims_mod.reference(study).noise  # the one tolerance source, for Section 7
    why_ctx = why_context(study)
    from ..plan.dataset import CLASSES, MEAN, STD

    return {
        "cfg": cfg,
        "public_config": public_config(prov.get("config") or cfg),
        "config_rows": config_rows(public_config(prov.get("config") or cfg)),
        "training_versions": training_versions(prov),
        "run_code": run_code(prov),
        "prov": prov,
        "recorded": recorded(prov, cfg),
        "t": {k.removesuffix(".csv"): df for k, df in tables.items()},
        "figures": figures,
        "captions": CAPTIONS,
        "reasons": reasons,
        "heads": heads,
        "devices": study.devices(),
        "runs": study.runs,
        "n_runs": len(study.runs),
        "n_variant_runs": len(study.variant_runs) - len(study.runs),
        "arch": architecture(cfg, heads[0]),
        "paper_parameters": paper.PARAMETERS,
        "paper": paper,
        "seed_loss": seed_loss(tables["loss_floor.csv"]),
        "ablation": ablation(study),
        "findings": findings(cfg, tables, study, reasons),
        "conf_head": conf_head,
        "conf_lr": conf_lr,
        "floor": stats.softmax_ce_floor(),
        "uniform": stats.softmax_ce_uniform(),
        "wrong": stats.softmax_ce_expected(0.0),
        "classes": CLASSES,
        "mean": MEAN,
        "std": STD,
        "config_path": config,
        "precisions": sorted(set(study.runs.precision)),
        "ref_machine": machines(study.runs)[REFERENCE],
        "variant_machines": "; ".join(
            f"{f'{v} (our reference)' if v == REFERENCE else v}: {m}"
            for v, m in machines(study.variant_runs).items()
        ),
        # where an fp32 variant has runs, the declared arithmetic deviation says what it cost
        "deviations": study.deviations(why.precision_effect(study, why_ctx["why_rows"])),
        "wording": phrases(int(study.runs.groupby(["head", "device", "lr"]).size().min())),
        "noise": noise,
        "wording_n": over_seeds(noise.n),
        "headline": headline(tables["claims.csv"], study.cost()),
        "cost": study.cost(),
        "stated_assumed": STATED_ASSUMED,
        "errata": ERRATA,
        "claims_table": 9 if ablation(study) else 8,
        "evidence_table": 10 if ablation(study) else 9,  # the next, in Section 11
        "n_train": int(study.runs.n_train.iloc[0]),
        "n_test": int(study.runs.n_test.iloc[0]),
        **why_ctx,
    }


def why_context(study) -> dict:
    """Page 1's "Why it falls short" and the section "What explains the gap"."""
    rows = why.rows(study)
    lr = why.rate(study)
    reference = study.runs[study.runs.lr == lr].final_test_acc
    return {
        "evidence_rows": evidence.IMPLEMENTATIONS,
        "evidence_sentence": evidence.placement(float(reference.mean()), lr, len(reference)),
        "why_rows": rows,
        "why_cover_rows": why.cover_rows(rows),
        "why_lr": lr,
        "why_gap_words": why.gap_words(why.gap(study)),
        "why_sentence": why.sentence(rows, why.gap(study), lr, 1 - study.confidence),
        "why_resolution": why.resolution_text(rows),
        "why_power_words": why.POWER_WORDS,
        "reporting_rows": why.reporting_rows(study),
        # at the rate the causes are measured at, as the table's n column counts them
        "variant_counts": study.variant_runs[study.variant_runs.lr == lr]
        .groupby("variant", sort=False)
        .size()
        .to_dict(),
    }


def render_html(ctx: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=num,
        signed=signed,
        pval=pval,
        units=units,
        integer=integer,
        basename=basename,
        project_path=project_path,
    )
    return env.get_template("report.html.j2").render(**ctx)


def write_pdf(html: str, out: Path, attachments=()) -> None:
    """The PDF, with ``attachments`` (the resolved config and provenance JSON: in full,
    where Appendix A shows a summary) embedded as files."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    css = weasyprint.CSS(filename=str(TEMPLATES / "report.css"))
    doc = weasyprint.HTML(string=html, base_url=str(TEMPLATES)).render(stylesheets=[css])
    files = [weasyprint.Attachment(filename=str(p), name=Path(p).name) for p in attachments]
    write_atomic(out, doc.write_pdf(attachments=files))


def build(config, runs, timing, tables_dir, figures_dir, provenance, out, html=None) -> None:
    """The report stage: the PDF at ``out`` (and its HTML at ``html`` if given)."""
    text = render_html(context(config, runs, timing, tables_dir, figures_dir, provenance))
    if html:
        write_atomic(Path(html), text)
    write_pdf(text, Path(out), [config, provenance])


__all__ = ["build", "context", "render_html"]
