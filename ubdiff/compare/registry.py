"""The methods a comparison can run, and what each one is.

A method is one small module under ``ubdiff/compare/methods/`` that defines
``METHOD = Method(...)``: how it trains on the split (m velocity maps, n of them
with seismic), how it generates N samples, which modalities it produces and
whether they come in pairs. :data:`REGISTRY` maps its name to that module (one
line each); :data:`PLANNED` names the paper's methods that this build does not
implement yet, so that asking for one gives a clear skip line, not an error and
not silence. Adding a method: write its module, add its line to REGISTRY (and
drop it from PLANNED).

Training must be resumable: a method keeps its checkpoints in ``ctx.folder``
and, when called again, continues from what is there (the UB-Diff methods save
after every few epochs / diffusion steps through ``UBDiff.save``, which writes
atomically). Generation writes OpenFWI-layout files into the folder it is given
(``ubdiff.compare.samples``).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Callable

MODALITIES = ("velocity", "seismic")

#: name -> module defining METHOD. Order matters only for display (and a method
#: that ``reuses`` another runs after it).
REGISTRY = {
    "ubdiff": "ubdiff.compare.methods.ubdiff",
    "wo_opt": "ubdiff.compare.methods.wo_opt",
    "ubdiff_seismic_first": "ubdiff.compare.methods.seismic_first",
    "sd_velocity": "ubdiff.compare.methods.sd_velocity",
    "ddpm": "ubdiff.compare.methods.ddpm",
    "mt_diffusion": "ubdiff.compare.methods.mt_diffusion",
    "sd_seismic": "ubdiff.compare.methods.sd_seismic",
}

#: The paper's methods not implemented in this build: name -> (table title, why missing).
PLANNED = {
}


@dataclass(frozen=True)
class Method:
    """One method of the comparison.

    train(ctx): train on ctx.data (resumable, checkpoints under ctx.folder).
    generate(ctx, n, seed, out_dir): write n samples (OpenFWI layout, physical units:
        model{i}.npy m/s and, for methods producing seismic, data{i}.npy) + metadata.
    reconstruct(ctx) -> f: f(normalised velocity (B, 1, 70, 70)) gives the (velocity, seismic)
        reconstructions through the method's autoencoder, normalised, and f.nt is its seismic
        time length (None: the method has no autoencoder); the held-out reconstruction
        check of tests/comparisons uses it.
    unavailable() -> None, or why this build cannot run the method.
    reuses: a method whose finished training this one may take over (see sd_velocity).
    """
    name: str
    title: str
    produces: tuple
    paired: bool
    train: Callable
    generate: Callable
    description: str
    reconstruct: Callable | None = None
    unavailable: Callable | None = None
    reuses: str | None = None

    def __post_init__(self):
        if not self.produces or any(m not in MODALITIES for m in self.produces):
            raise ValueError(f"method {self.name}: produces must be a subset of {MODALITIES}, got {self.produces}")
        if self.paired and tuple(sorted(self.produces)) != ("seismic", "velocity"):
            raise ValueError(f"method {self.name}: a paired method produces both modalities")

    def why_unavailable(self) -> str | None:
        return self.unavailable() if self.unavailable is not None else None


@dataclass
class Context:
    """What a method sees: where to keep its files, the data split, the plan (sizes and
    training lengths of the scale), the seed, the device, and the other methods' runs."""
    name: str
    folder: str                      # this method's folder (its run, samples, evaluation)
    data: object                     # ubdiff.compare.split.Split
    plan: dict
    seed: int
    device: str = "cpu"
    progress: bool = True
    finished: dict = field(default_factory=dict)   # other method name -> its folder, once trained

    def shared(self, name: str) -> str | None:
        """The folder of method ``name`` if it was trained in this comparison, else None."""
        return self.finished.get(name)

    def log(self, msg: str) -> None:
        print(f"[{self.name}] {msg}", flush=True)

    def path(self, *parts) -> str:
        os.makedirs(self.folder, exist_ok=True)
        return os.path.join(self.folder, *parts)


def names() -> list:
    """Every method name: registered ones, then planned ones."""
    return list(REGISTRY) + [n for n in PLANNED if n not in REGISTRY]


def title(name: str) -> str:
    if name in REGISTRY:
        return get(name).title
    if name in PLANNED:
        return PLANNED[name][0]
    raise KeyError(name)


def get(name: str) -> Method:
    """The Method of a registered name (its module imported on first use)."""
    if name not in REGISTRY:
        if name in PLANNED:
            raise LookupError(f"method {name!r} ({PLANNED[name][0]}) is {PLANNED[name][1]}")
        raise LookupError(f"unknown method {name!r}; known: {', '.join(names())}")
    m = importlib.import_module(REGISTRY[name]).METHOD
    if m.name != name:
        raise RuntimeError(f"{REGISTRY[name]}: METHOD.name is {m.name!r}, registered as {name!r}")
    return m


def status(name: str) -> tuple:
    """(Method or None, None or the reason it cannot run in this build)."""
    if name in PLANNED and name not in REGISTRY:
        return None, PLANNED[name][1]
    m = get(name)
    return m, m.why_unavailable()


def resolve(selection) -> list:
    """Method names from None (all), 'a,b' or a list; unknown names are a ValueError
    naming the known ones. Order: registry order, a reused method before its user."""
    if selection is None:
        chosen = names()
    else:
        if isinstance(selection, str):
            selection = [s.strip() for s in selection.split(",") if s.strip()]
        chosen = list(dict.fromkeys(selection))
        bad = [s for s in chosen if s not in REGISTRY and s not in PLANNED]
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; known: {', '.join(names())}")
        if not chosen:
            raise ValueError("no method selected")
    order = [n for n in names() if n in chosen]
    return order
