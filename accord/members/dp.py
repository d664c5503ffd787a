"""Differentially private members: DP-SGD, with epsilon from Google's ``dp-accounting``.

``dp_logreg`` is a multinomial logistic regression trained by the standard recipe, DP-SGD:
each step samples every row independently with probability ``sample_rate`` (Poisson
sampling), clips each sampled row's gradient to L2 norm ``l2_norm_clip``, adds Gaussian
noise of standard deviation ``noise_multiplier × l2_norm_clip`` to their sum and divides by
the expected batch size. ``epochs / sample_rate`` steps make one fit. The privacy of one fit
is the composition of those steps, ``SelfComposedDpEvent(PoissonSampledDpEvent(q,
GaussianDpEvent(σ)), T)``, and a row is read by every fit whose training rows hold it: the
K−1 fold fits whose training folds hold it, and the refit (none with ``final: bag``). Epsilon
is computed by dp-accounting's RDP accountant over that composition, never by a formula of
ours; given ε and δ, the noise is calibrated by it (`calibrate_dp_mechanism`).

The rows sampled and the noise drawn come from the operating system's entropy, never from
the run's seed: the seed is published in the manifest, and noise anyone can regenerate
protects nothing; fits are therefore not reproducible bit for bit. Each fit draws its own.

Nothing is computed from the private rows outside DP-SGD: numeric features are scaled by
bounds the user gives (``feature_bounds``; a value outside is clipped, a missing one is the
midpoint), categorical features are one-hot over the schema's categories. The schema itself
(column names, types, category levels, class labels) is treated as public.

Why: a published model can leak its training rows; DP bounds what any one row can change.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.errors import ConfigError, IntegrityError
from accord.members.base import FitShape, Member
from accord.types import Task

WEIGHTS_FILE = "weights.json"
DP_KEYS = {"epsilon", "delta", "l2_norm_clip", "noise_multiplier"}
DP_DEFAULTS: dict[str, Any] = {"delta": 1e-5, "l2_norm_clip": 1.0}
ACCOUNTANT = "rdp"

# One DP-SGD step as run: (rows sampled, the noise added to their summed clipped gradients).
StepHook = Callable[[int, np.ndarray], None]


def dp_event(noise_multiplier: float, sample_rate: float, steps: int, fits: int = 1) -> Any:
    """The dp-accounting event of `fits` DP-SGD fits of `steps` Poisson-sampled Gaussian steps each."""
    from dp_accounting import GaussianDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent

    one_fit = SelfComposedDpEvent(
        PoissonSampledDpEvent(sample_rate, GaussianDpEvent(noise_multiplier)), steps
    )
    return one_fit if fits == 1 else SelfComposedDpEvent(one_fit, fits)


def epsilon_of(event: Any, delta: float) -> float:
    """ε of `event` at `delta`, by dp-accounting's RDP accountant."""
    from dp_accounting.rdp import RdpAccountant

    return float(RdpAccountant().compose(event).get_epsilon(delta))


def calibrate_noise(epsilon: float, delta: float, sample_rate: float, steps: int, fits: int) -> float:
    """The smallest noise multiplier whose `fits` × `steps` steps spend at most `epsilon` (dp-accounting)."""
    from dp_accounting import LowerEndpointAndGuess, calibrate_dp_mechanism
    from dp_accounting.rdp import RdpAccountant

    return float(
        calibrate_dp_mechanism(
            RdpAccountant,
            lambda sigma: dp_event(sigma, sample_rate, steps, fits),
            epsilon,
            delta,
            bracket_interval=LowerEndpointAndGuess(0.1, 2.0),
            tol=1e-4,
        )
    )


def steps_of(params: Mapping[str, Any]) -> int:
    """DP-SGD steps of one fit: ``epochs / sample_rate``, rounded up."""
    return math.ceil(float(params["epochs"]) / float(params["sample_rate"]))


def accounted(params: Mapping[str, Any], fits: int) -> dict[str, Any]:
    """A DP member's ``dp`` parameters complete for `fits` fits reading each row: noise and ε both.

    Given ``epsilon`` (the budget over all `fits`) the noise multiplier is calibrated; given
    ``noise_multiplier`` the ε it spends is computed. Either way both are returned, with the
    ε of one fit, the fits, steps, sampling rate, mechanism, accountant and library version.

    Raises:
        ConfigError: neither or an invalid one of ``epsilon`` and ``noise_multiplier``.
    """
    from importlib import metadata

    dp = dict(params["dp"])
    delta, q, steps = float(dp["delta"]), float(params["sample_rate"]), steps_of(params)
    if dp.get("noise_multiplier") is None:
        sigma = calibrate_noise(float(dp["epsilon"]), delta, q, steps, fits)
    else:
        sigma = float(dp["noise_multiplier"])
    total = epsilon_of(dp_event(sigma, q, steps, fits), delta)
    if dp.get("epsilon") is not None and total > float(dp["epsilon"]) * (1 + 1e-6):
        raise ConfigError(
            f"noise_multiplier {sigma} spends epsilon {total:.3f} over {fits} fits, more than the epsilon "
            f"{dp['epsilon']} given; give only one of the two, or more noise."
        )
    return {
        **dp,
        "noise_multiplier": sigma,
        "epsilon_total": total,
        "epsilon_per_fit": epsilon_of(dp_event(sigma, q, steps), delta),
        "delta": delta,
        "fits_per_row": fits,
        "steps_per_fit": steps,
        "sample_rate": q,
        "mechanism": "DP-SGD: Poisson-sampled rows, per-row gradient clipping, Gaussian noise",
        "accountant": f"dp-accounting {metadata.version('dp-accounting')} RdpAccountant",
    }


def check_dp(where: str, task: Task, given: Any, params: Mapping[str, Any]) -> None:
    """Refuse a ``dp`` mapping that is incomplete or invalid, a regression task, or bad rates and bounds.

    Raises:
        ConfigError: naming `where` (the member), the parameter, what was expected and found.
    """
    if task != "classification":
        raise ConfigError(f"{where}: dp is for classification; found a {task} task. Leave dp out.")
    if not isinstance(given, Mapping) or set(given) - DP_KEYS:
        raise ConfigError(f"{where}: dp must be a mapping of {sorted(DP_KEYS)}; found {given!r}.")
    dp = {**DP_DEFAULTS, **given}
    if (dp.get("epsilon") is None) == (dp.get("noise_multiplier") is None):
        raise ConfigError(
            f"{where}: give exactly one of dp.epsilon (the noise is derived) and dp.noise_multiplier "
            f"(epsilon is reported); found {dict(given)}."
        )
    for key in ("epsilon", "noise_multiplier", "l2_norm_clip"):
        if dp.get(key) is not None and not float(dp[key]) > 0:
            raise ConfigError(f"{where}: dp.{key} must be > 0; found {dp[key]!r}.")
    if not 0 < float(dp.get("delta", 0)) < 1:
        raise ConfigError(f"{where}: dp.delta must be in (0, 1), e.g. 1e-5; found {dp.get('delta')!r}.")
    if not 0 < float(params["sample_rate"]) <= 1:
        raise ConfigError(f"{where}: sample_rate must be in (0, 1]; found {params['sample_rate']!r}.")
    bounds = params.get("feature_bounds")
    if not isinstance(bounds, Mapping):
        raise ConfigError(f"{where}: feature_bounds must map each numeric column to [low, high].")
    for col, pair in bounds.items():
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and float(pair[0]) < float(pair[1])):
            raise ConfigError(
                f"{where}: feature_bounds[{col!r}] must be [low, high] with low < high; found {pair!r}."
            )


def check_bounds(where: str, params: Mapping[str, Any], schema: Schema) -> None:
    """Refuse numeric columns without given bounds (computing them from the rows would leak), or extra ones.

    Raises:
        ConfigError: naming the member and the columns.
    """
    bounds = dict(params.get("feature_bounds") or {})
    missing = [c for c in schema.numeric if c not in bounds]
    unknown = sorted(set(bounds) - set(schema.numeric))
    if missing:
        raise ConfigError(
            f"{where}: feature_bounds has no [low, high] for numeric column(s) {missing}; bounds computed "
            "from the private rows would leak them, so give them (from domain knowledge, or a DP estimate "
            "whose cost you count), or leave those columns out (ignore_columns)."
        )
    if unknown:
        raise ConfigError(
            f"{where}: feature_bounds names {unknown}, which are no numeric column of the table; its numeric "
            f"columns are {schema.numeric}."
        )


def bounded_design(X: pd.DataFrame, columns: list[dict[str, Any]], bounds: Mapping[str, Any]) -> np.ndarray:
    """Rows as features computed from nothing but the given bounds and the schema (nothing learnt from rows).

    Numeric columns scaled to [-1, 1] by their bounds (clipped; a missing value is 0, the
    midpoint); categorical ones one-hot over the schema's categories; and a bias column of ones.
    """
    parts = []
    for col in columns:
        if col["kind"] == "numeric":
            low, high = bounds[col["name"]]
            x = pd.to_numeric(X[col["name"]], errors="coerce").to_numpy(dtype="float64")
            scaled = np.clip((x - low) / (high - low), 0.0, 1.0) * 2 - 1
            parts.append(np.nan_to_num(scaled, nan=0.0)[:, None])
        else:
            values = X[col["name"]].astype("string")  # a missing value matches no category
            hits = [(values == c).fillna(False).to_numpy(dtype=bool) for c in col["categories"]]
            parts.append(np.stack(hits, axis=1).astype("float64") if hits else np.zeros((len(X), 0)))
    parts.append(np.ones((len(X), 1)))
    return np.hstack(parts)


def expected_batch(sample_rate: float, n: int) -> float:
    """The rows a step samples on average: a noisy sum is divided by it, never by the sample's size."""
    return max(sample_rate * n, 1e-12)


def dp_steps(
    n: int,
    shapes: Sequence[tuple[int, ...]],
    *,
    clip: float,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    rng: np.random.Generator,
    on_step: StepHook | None = None,
) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """DP-SGD's sampling and noise, step by step: what the accountant is told each step does.

    Each of `steps` steps yields the rows sampled (each of `n` independently, with
    probability `sample_rate`) and noise ``N(0, (noise_multiplier·clip)²)`` for every
    coordinate of each shape in `shapes` (one per weight). `on_step` sees the sample size
    and all the noise, flattened, before the step uses them.

    Why one place: the numpy and the Keras members must both spend exactly what is accounted.
    """
    for _ in range(steps):
        rows = np.flatnonzero(rng.random(n) < sample_rate)
        noise = [rng.normal(0.0, noise_multiplier * clip, size=shape) for shape in shapes]
        if on_step is not None:
            on_step(len(rows), np.concatenate([z.ravel() for z in noise]))
        yield rows, noise


def dp_sgd(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    clip: float,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    learning_rate: float,
    l2: float,
    rng: np.random.Generator,
    on_step: StepHook | None = None,
) -> np.ndarray:
    """Weights ``(d, K)`` of a softmax regression fitted by DP-SGD on rows `X` and one-hot labels `Y`.

    Each step: rows sampled with probability `sample_rate`; each sampled row's gradient
    ``x (p - y)ᵀ`` clipped to Frobenius norm `clip`; noise ``N(0, (noise_multiplier·clip)²)``
    added to each coordinate of their sum; divided by the expected batch ``sample_rate·n``;
    a step of `learning_rate` (plus `l2` weight decay, which reads no row). `on_step` sees
    each step's sample size and noise (the tests check them against what the accountant was told).
    """
    n, d = X.shape
    k = Y.shape[1]
    W = np.zeros((d, k))
    expected = expected_batch(sample_rate, n)
    sampled = dp_steps(
        n,
        [(d, k)],
        clip=clip,
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        steps=steps,
        rng=rng,
        on_step=on_step,
    )
    for rows, (noise,) in sampled:
        Xb, Yb = X[rows], Y[rows]
        logits = Xb @ W
        logits -= logits.max(axis=1, keepdims=True)
        P = np.exp(logits)
        P /= P.sum(axis=1, keepdims=True)
        E = P - Yb  # (b, k); row i's gradient is the outer product of Xb[i] and E[i]
        norms = np.linalg.norm(Xb, axis=1) * np.linalg.norm(E, axis=1)  # ‖x eᵀ‖_F = ‖x‖ ‖e‖
        scale = np.minimum(1.0, clip / np.maximum(norms, 1e-12))
        summed = Xb.T @ (E * scale[:, None])
        W -= learning_rate * ((summed + noise) / expected + l2 * W)
    return W


class DPLogReg(Member):
    """Multinomial logistic regression trained with DP-SGD (classification only); see the module."""

    kind = "dp_logreg"
    on_step: StepHook | None = None  # sees each DP-SGD step's sample size and noise (tests)
    defaults: ClassVar[dict[str, Any]] = {
        "dp": dict(DP_DEFAULTS),
        "feature_bounds": {},
        "sample_rate": 0.05,
        "epochs": 20,
        "learning_rate": 0.1,
        "l2": 1e-4,
    }

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return json.loads(json.dumps(cls.defaults))

    @classmethod
    def is_private(cls, params: Mapping[str, Any]) -> bool:
        return True

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        return set(cls.defaults)

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        """Refuse a regression task, an incomplete ``dp``, a bad rate, or bad bounds (`check_dp`)."""
        check_dp(f"member {member!r} (kind dp_logreg)", task, params.get("dp"), params)

    @classmethod
    def resolve_params(
        cls,
        member: str,
        params: Mapping[str, Any],
        schema: Schema,
        trusted: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Refuse numeric columns without given bounds (`check_bounds`)."""
        check_bounds(f"member {member!r} (kind dp_logreg)", params, schema)
        return dict(params)

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Steps × sampled rows × features × classes: well under a second for bench tables."""
        steps = steps_of({**cls.defaults, **dict(params)})
        rate = float(params.get("sample_rate", cls.defaults["sample_rate"]))
        return 0.05 + 2e-8 * steps * rate * shape.rows * shape.features * max(2, shape.classes)

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        return bounded_design(X, self.columns_, self.params["feature_bounds"])

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        """Fit by DP-SGD with the noise of ``params["dp"]`` (calibrated before training, `accounted`)."""
        self.columns_ = [c.to_dict() for c in schema.columns]
        dp = self.params["dp"]
        if dp.get("noise_multiplier") is None:
            raise ConfigError(
                "dp_logreg: the noise multiplier was not calibrated before training (accounted)."
            )
        Y = np.eye(self.n_classes)[np.asarray(y, dtype=int)]
        self.weights_ = dp_sgd(
            self._design(X),
            Y,
            clip=float(dp["l2_norm_clip"]),
            noise_multiplier=float(dp["noise_multiplier"]),
            sample_rate=float(self.params["sample_rate"]),
            steps=steps_of(self.params),
            learning_rate=float(self.params["learning_rate"]),
            l2=float(self.params["l2"]),
            rng=np.random.default_rng(secrets.randbits(128)),  # never from the seed: see `private_rng`
            on_step=self.on_step,
        )
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        logits = self._design(X) @ self.weights_
        logits -= logits.max(axis=1, keepdims=True)
        P = np.exp(logits)
        return np.asarray(P / P.sum(axis=1, keepdims=True), dtype="float64")

    def save(self) -> dict[str, bytes]:
        document = {"columns": self.columns_, "weights": self.weights_.tolist()}
        return {WEIGHTS_FILE: json.dumps(document).encode()}

    @classmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        member = cls.from_info(info)
        try:
            document = json.loads(files[WEIGHTS_FILE])
            member.columns_ = list(document["columns"])
            member.weights_ = np.asarray(document["weights"], dtype="float64")
        except (KeyError, ValueError, TypeError) as e:
            raise IntegrityError(f"dp_logreg {WEIGHTS_FILE} is not a weights document: {e}") from e
        return member
