"""History: what ``fit`` measured, per step and per epoch, as plain Python values."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["History"]


class History:
    """Training record.

    Attributes:
        steps: ``{"step": [...], "epoch": [...], "loss": [...], "lr": [...], <metric>: [...]}``,
            one entry per optimizer step (metrics are per-batch values).
        epochs: ``{"epoch": [...], "loss": [...], <metric>: [...], "val_loss": [...],
            "val_<metric>": [...], "time_s": [...], "samples_per_s": [...]}``, one entry per epoch.
        stop_reason: None, or why training stopped early ("early_stopping", "non_finite_loss",
            "interrupted").
    """

    def __init__(self) -> None:
        self.steps: dict[str, list[Any]] = {}
        self.epochs: dict[str, list[Any]] = {}
        self.stop_reason: str | None = None
        self.message: str | None = None

    # -- recording -----------------------------------------------------------------
    @staticmethod
    def _append(table: dict[str, list[Any]], row: dict[str, Any]) -> None:
        n = len(next(iter(table.values()))) if table else 0
        for key, value in row.items():
            col = table.setdefault(key, [None] * n)
            col.append(value)
        for key, col in table.items():
            if len(col) < n + 1:
                col.append(None)

    def add_step(self, row: dict[str, Any]) -> None:
        self._append(self.steps, row)

    def add_epoch(self, row: dict[str, Any]) -> None:
        self._append(self.epochs, row)

    # -- reading -------------------------------------------------------------------
    @property
    def num_epochs(self) -> int:
        return len(self.epochs.get("epoch", []))

    @property
    def num_steps(self) -> int:
        return len(self.steps.get("step", []))

    def last(self, key: str, default: Any = None) -> Any:
        """The latest epoch value of ``key`` (e.g. "val_accuracy")."""
        col = self.epochs.get(key)
        return col[-1] if col else default

    def __getitem__(self, key: str) -> list[Any]:
        if key in self.epochs:
            return self.epochs[key]
        if key in self.steps:
            return self.steps[key]
        raise KeyError(f"History: no {key!r} was logged; epoch keys: {sorted(self.epochs)}, step keys: {sorted(self.steps)}")

    def __repr__(self) -> str:
        last = {k: v[-1] for k, v in self.epochs.items() if v and isinstance(v[-1], (int, float))}
        return f"History(epochs={self.num_epochs}, steps={self.num_steps}, last={last})"

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite floats become the strings "nan"/"inf"/"-inf")."""
        return {"steps": _json_safe(self.steps), "epochs": _json_safe(self.epochs),
                "stop_reason": self.stop_reason, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        if not isinstance(d, dict) or "steps" not in d or "epochs" not in d:
            raise ValueError(f"History.from_dict: expected a dict with 'steps' and 'epochs', got {str(d)[:80]!r}")
        h = cls()
        h.steps = _from_json(d["steps"])
        h.epochs = _from_json(d["epochs"])
        h.stop_reason, h.message = d.get("stop_reason"), d.get("message")
        return h

    def to_json(self, path: "str | Path") -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    # -- plotting ------------------------------------------------------------------
    def plot(self, path: "str | Path | None" = None) -> Any:
        """A matplotlib figure: loss per step and per epoch, then one panel per metric.

        Saves to ``path`` when given.  Made with the object API (``matplotlib.figure.Figure``),
        never through pyplot: the user's matplotlib backend and pyplot's figures are untouched
        (a notebook shows the returned figure when it is the cell's value).
        """
        from matplotlib.figure import Figure

        metrics = sorted({k.removeprefix("val_") for k in self.epochs
                          if k.removeprefix("val_") not in ("loss", "epoch", "time_s", "samples_per_s",
                                                             "lr", "confusion_matrix")
                          and _numeric(self.epochs[k])})
        fig = Figure(figsize=(5 * (1 + len(metrics)), 3.6))
        axes = fig.subplots(1, 1 + len(metrics), squeeze=False)
        ax = axes[0, 0]
        if self.num_steps:
            steps_per_epoch = max(1, self.num_steps / max(self.num_epochs, 1))
            xs = [s / steps_per_epoch for s in range(1, self.num_steps + 1)]
            ax.plot(xs, _floats(self.steps["loss"]), lw=0.6, alpha=0.4, label="train (per step)")
        for key, label in (("loss", "train"), ("val_loss", "validation")):
            if _numeric(self.epochs.get(key, [])):
                ax.plot(self.epochs["epoch"], _floats(self.epochs[key]), "o-", label=label)
        ax.set(xlabel="epoch", ylabel="loss", title="loss")
        ax.legend()
        for ax, m in zip(axes[0, 1:], metrics):
            for key, label in ((m, "train"), (f"val_{m}", "validation")):
                if _numeric(self.epochs.get(key, [])):
                    ax.plot(self.epochs["epoch"], _floats(self.epochs[key]), "o-", label=label)
            ax.set(xlabel="epoch", title=m)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _numeric(col: list[Any]) -> bool:
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in col)


def _floats(col: list[Any]) -> list[float]:
    return [float(v) if isinstance(v, (int, float)) else math.nan for v in col]


def _json_safe(table: dict[str, list[Any]]) -> dict[str, list[Any]]:
    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return v
    return {k: [fix(v) for v in col] for k, col in table.items()}


def _from_json(table: dict[str, list[Any]]) -> dict[str, list[Any]]:
    def fix(v: Any) -> Any:
        return float(v) if v in ("nan", "inf", "-inf") else v
    return {k: [fix(v) for v in col] for k, col in table.items()}
