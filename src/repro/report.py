"""Stage 7: the PDF report. Tables (CSV), figures (SVG), provenance (JSON) and the
runs' histories go through a jinja2 template to HTML, which weasyprint turns into a
PDF with a table of contents, page numbers and vector figures.

The report reads the CSVs the tables stage wrote, so the PDF shows the same numbers
as ``results/tables``; it recomputes only what is purely descriptive (the logits-head
ablation summary and the architecture table).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import jinja2

from . import claims as claims_mod
from . import stats
from .architecture import architecture_table
from .data import OFFLINE_JPEG_Q75_SHA256
from .errors import UserError
from .figures import FIGURES, confusion_choice
from .files import write_atomic
from .settings import ModelSpec
from .tables import add_common_arguments, load_study, read_tables

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "report_templates"
PAPER_PARAMETERS = 4_595_045

CAPTIONS = {
    "fig2_loss": "Fig. 2: Training and test loss per epoch",
    "fig3_accuracy": "Fig. 3: Training and test accuracy per epoch",
    "fig4_confusion": "Fig. 4: Test performance (confusion heatmap)",
    "fig5_timing": "Fig. 5: Training time per 5 epochs by device",
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
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def integer(value) -> str:
    return f"{int(value):,}"


# ---- content ------------------------------------------------------------------------


def architecture(cfg: dict, head: str) -> dict:
    spec = ModelSpec.from_config(cfg["model"], head=head)
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
    inside = (first.paper_in_ci == "yes").sum()
    judged = first.paper_in_ci.isin(["yes", "no"]).sum()
    out.append(
        f"Best mean final test accuracy ({best['head']} head): {best.final_mean:.2f} % at"
        f" lr {best.lr} over {int(best.n_seeds)} seed(s), against the paper's"
        f" {num(best.paper)} %; the paper's value lies inside our {cfg['report']['confidence']:.0%}"
        f" interval for {inside} of {judged} learning rates."
    )
    comp = tables["lr_comparison.csv"]
    comp = comp[comp["head"] == study.heads()[0]]
    if len(comp):
        sig = comp[comp.conclusion != "no difference beyond noise"]
        out.append(
            f"Pairwise learning-rate comparison ({comp.test.iloc[0].split(' (')[0]},"
            f" Holm-adjusted): {len(sig)} of {len(comp)} pairs differ beyond noise"
            + (": " + "; ".join(sig.conclusion) if len(sig) else ".")
        )
    floor = tables["loss_floor.csv"]
    soft = floor[(floor.source == "measured") & (floor["head"] == "softmax")]
    if len(soft):
        r = soft.iloc[0]
        out.append(
            "With the faithful softmax head the loss cannot go below"
            f" {stats.softmax_ce_floor():.3f}; at lr {r.lr} our final test loss is"
            f" {r.final_test_loss:.3f} where a confident"
            f" classifier with the measured {r.final_test_acc:.1f} % accuracy would have"
            f" {r.expected_test_loss:.3f}. The seed's 1.52 / 1.57 match the expected 1.521 / 1.566"
            " at its 94 % / 89.55 % accuracy, so it evidently applied CrossEntropyLoss to a"
            " Softmax output."
        )
    c = tables["claims.csv"]
    counts = {v: int((c.verdict == v).sum()) for v in (claims_mod.HOLDS, claims_mod.FAILS)}
    out.append(
        f"Of the seed's {len(c)} checked claims, {counts[claims_mod.HOLDS]} hold,"
        f" {counts[claims_mod.FAILS]} do not hold and"
        f" {len(c) - sum(counts.values())} are not measurable with this config (Section 9)."
    )
    if reasons:
        out.append(
            "This run is not comparable to the paper ("
            + "; ".join(reasons)
            + "): its numbers test the pipeline, not the paper's results."
        )
    return out


RECORDED_FIELDS = ("label", "folder", "gpu", "commit", "date", "driver", "torch", "cuda")
RECORDED_FIELDS += ("cudnn", "python", "host", "command", "data_sha256")


def recorded(prov: dict) -> dict | None:
    """What page 1 and Appendix A say about recorded runs; None when the runs were trained."""
    rec = prov.get("recorded")
    if not isinstance(rec, dict):
        return None
    return {k: str(rec.get(k) or "unknown") for k in RECORDED_FIELDS}


def deviations(data: dict, precisions: list[str]) -> list[str]:
    """What this comparison with the seed's numbers changes, said where it is made:
    the images, the arithmetic, the architecture."""
    source = str(data.get("source", ""))
    if data.get("sha256") == OFFLINE_JPEG_Q75_SHA256:
        images = (
            "images: the offline archive, a JPEG (quality 75) re-encoding of CIFAR-10, where "
            "the seed used the original lossless images; expect up to about 1 point lower accuracy"
        )
    elif source.startswith("torchvision"):
        images = "images: the official CIFAR-10 download (lossless), as the seed"
    else:
        images = f"images: {source or 'unknown source'} of unknown encoding, not the seed's"
    if "bf16" in precisions:
        arithmetic = (
            "arithmetic: bf16 autocast (weights, batch-norm statistics, loss and optimizer in "
            "fp32), where the seed trained in fp32"
        )
    else:
        arithmetic = "arithmetic: fp32, as the seed (TF32 convolutions on cuda, PyTorch's default)"
    return [
        images,
        arithmetic,
        "architecture: our reading of the seed's text, whose diagram is missing (Section 3)",
    ]


def context(args) -> dict:
    study = load_study(args.config, args.runs, args.timing)
    cfg = study.config
    tables = read_tables(args.tables_dir)
    for name in ("test_accuracy.csv", "loss_floor.csv"):
        tables[name]["lr"] = tables[name]["lr"].map(lambda v: f"{float(v):g}" if v == v else "")
    comp = tables["lr_comparison.csv"]
    for col in ("lr_a", "lr_b"):
        comp[col] = comp[col].map(lambda v: f"{float(v):g}")
    prov_path = Path(args.provenance)
    if not prov_path.exists():
        raise UserError(f"provenance {prov_path} does not exist; run `python -m repro provenance`")
    prov = json.loads(prov_path.read_text())
    figures_dir = Path(args.figures_dir)
    figures = {}
    for name in FIGURES:
        svg = figures_dir / f"{name}.svg"
        if not svg.exists():
            raise UserError(f"figure {svg} does not exist; run `python -m repro figures` first")
        figures[name] = svg.resolve().as_uri()
    reasons = claims_mod.comparability(cfg)
    heads = study.heads()
    conf_head, _, conf_lr = confusion_choice(study)
    from .data import CLASSES, MEAN, STD

    return {
        "cfg": cfg,
        "prov": prov,
        "recorded": recorded(prov),
        "t": {k.removesuffix(".csv"): df for k, df in tables.items()},
        "figures": figures,
        "captions": CAPTIONS,
        "reasons": reasons,
        "heads": heads,
        "devices": sorted(set(study.runs.device)),
        "runs": study.runs,
        "n_runs": len(study.runs),
        "arch": architecture(cfg, heads[0]),
        "paper_parameters": PAPER_PARAMETERS,
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
        "config_path": args.config,
        "precisions": sorted(set(study.runs.precision)),
        "deviations": deviations(prov.get("data", {}), sorted(set(study.runs.precision))),
        "n_train": int(study.runs.n_train.iloc[0]),
        "n_test": int(study.runs.n_test.iloc[0]),
    }


def render_html(ctx: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, signed=signed, pval=pval, integer=integer)
    return env.get_template("report.html.j2").render(**ctx)


def write_pdf(html: str, out: Path) -> None:
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    css = weasyprint.CSS(filename=str(TEMPLATES / "report.css"))
    doc = weasyprint.HTML(string=html, base_url=str(TEMPLATES)).render(stylesheets=[css])
    write_atomic(out, doc.write_pdf())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--tables-dir", required=True, help="folder with the tables' CSVs")
    parser.add_argument("--figures-dir", required=True, help="folder with the figures' SVGs")
    parser.add_argument("--provenance", required=True, help="provenance JSON")
    parser.add_argument("--out", required=True, help="PDF to write")
    parser.add_argument("--html", help="also write the intermediate HTML here (optional)")


def main(args: argparse.Namespace) -> int:
    html = render_html(context(args))
    if args.html:
        Path(args.html).write_text(html)
    write_pdf(html, Path(args.out))
    return 0


__all__ = ["main", "add_arguments", "render_html"]
