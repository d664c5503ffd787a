"""Keras member: a dense network on one-hot, scaled features, saved as a `.keras` archive.

TensorFlow is imported lazily, the first time a Keras member fits or loads,
after its thread counts are set so it does not oversubscribe a Dask worker.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer

from accord.data.schema import Schema
from accord.errors import ConfigError, IntegrityError
from accord.members import skops_io
from accord.members.base import FitShape, Member
from accord.members.dp import (
    StepHook,
    bounded_design,
    check_bounds,
    check_dp,
    dp_steps,
    expected_batch,
    steps_of,
)
from accord.members.preprocess import make_preprocessor
from accord.types import Task

PREPROCESS_FILE = "preprocess.skops"
MODEL_FILE = "model.keras"
DESIGN_FILE = (
    "design.json"  # a DP member's columns: its features come from given bounds, not a fitted transformer
)
DP_PARAMS = {"dp", "feature_bounds", "sample_rate"}  # keras_mlp's DP-SGD parameters (accord.members.dp)
DP_PARAM_DEFAULTS: dict[str, Any] = {"feature_bounds": {}, "sample_rate": 0.05}
PREDICT_CHUNK = 65536
# Batches Keras runs per call into TensorFlow's compiled train step: each call is a round trip
# through Python. The batches, their order, every update and the trained weights stay the same
# (tests/test_members.py checks it); callbacks run per epoch. Measurements: docs/performance.md.
STEPS_PER_EXECUTION = 32


def import_keras(threads: int = 1) -> Any:
    """Import Keras on the TensorFlow backend with `threads` intra-op threads.

    Sets TensorFlow's environment first (backend, log level, thread counts) where it does
    not say otherwise, and turns op determinism on. Only the first call in a process, before
    TensorFlow's runtime starts, sets its thread counts. TensorFlow's oneDNN custom operations
    are off unless ``TF_ENABLE_ONEDNN_OPTS`` says otherwise: they pick kernels for the CPU
    they run on, so results may differ in the last bits from machine to machine, and their
    notice is printed by every process that imports TensorFlow, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. Measurements: docs/performance.md.

    Args:
        threads: Intra-op threads for TensorFlow's runtime.

    Returns:
        The `keras` module.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:  # only possible before TensorFlow's runtime starts; the first member sets it per process
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    tf.config.experimental.enable_op_determinism()  # same seed, same weights, on any worker
    return keras


def dp_train(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    clip: float,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    learning_rate: float,
    l2: float,
    rng: np.random.Generator,
    on_step: StepHook | None = None,
) -> None:
    """Train a classifier `model` by DP-SGD (see `accord.members.dp.dp_sgd`), with Adam on the noisy gradient.

    Each step samples rows with probability `sample_rate`, takes each row's gradient of its
    own loss (`GradientTape.jacobian`), clips it to L2 norm `clip` over all weights, sums,
    adds ``N(0, (noise_multiplier·clip)²)`` to every weight's coordinate and divides by the
    expected batch ``sample_rate·n``; weight decay `l2` reads no row. Dropout is off in these
    steps (it would make a row's gradient random beyond the accounted noise).
    """
    import tensorflow as tf

    keras = import_keras()
    optimizer = keras.optimizers.Adam(learning_rate)
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="none")
    variables = model.trainable_variables
    n = len(X)
    expected = expected_batch(sample_rate, n)
    data, labels = tf.constant(X, tf.float32), tf.constant(y, tf.int64)

    @tf.function(reduce_retracing=True)
    def clipped_sum(xb: Any, yb: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            losses = loss(yb, model(xb, training=False))
        per_row = tape.jacobian(losses, variables)  # one (b, *shape) tensor per weight
        squares = tf.add_n([tf.reduce_sum(tf.reshape(g, (tf.shape(g)[0], -1)) ** 2, axis=1) for g in per_row])
        scale = tf.minimum(1.0, clip / tf.maximum(tf.sqrt(squares), 1e-12))
        return [tf.tensordot(scale, g, axes=1) for g in per_row]

    shapes = [tuple(v.shape) for v in variables]
    sampled = dp_steps(
        n,
        shapes,
        clip=clip,
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        steps=steps,
        rng=rng,
        on_step=on_step,
    )
    for rows, noise in sampled:
        if len(rows):
            summed = clipped_sum(tf.gather(data, rows), tf.gather(labels, rows))
        else:
            summed = [tf.zeros_like(v) for v in variables]
        grads = [
            (s + tf.constant(z, tf.float32)) / expected + l2 * v
            for s, z, v in zip(summed, noise, variables, strict=True)
        ]
        optimizer.apply_gradients(zip(grads, variables, strict=True))


def load_keras_archive(data: bytes, *, where: str) -> Any:
    """Load `.keras` bytes with safe mode on (no Lambda layers, no arbitrary code)."""
    keras = import_keras()
    if not data.startswith(b"PK"):
        raise IntegrityError(f"{where} is not a .keras archive (zip); refusing to load it.")
    with tempfile.TemporaryDirectory(prefix="accord-keras-") as tmp:
        path = Path(tmp) / MODEL_FILE
        path.write_bytes(data)
        try:
            return keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as e:  # Keras raises many types for refused or malformed archives
            raise IntegrityError(f"{where} was refused by Keras safe mode: {e}") from e


def save_keras_archive(model: Any) -> bytes:
    """Serialise a Keras model to `.keras` bytes."""
    with tempfile.TemporaryDirectory(prefix="accord-keras-") as tmp:
        path = Path(tmp) / MODEL_FILE
        model.save(path)
        return path.read_bytes()


class KerasMLP(Member):
    """A multilayer perceptron (dense body + task head) trained with Adam and early stopping."""

    kind: ClassVar[str] = "keras_mlp"
    prep_: ColumnTransformer
    columns_: list[dict[str, Any]] | None = None  # a DP member's schema columns (`bounded_design`)
    on_step: StepHook | None = None  # sees each DP-SGD step's sample size and noise (tests)
    model_: Any
    y_mean_: float = 0.0
    y_std_: float = 1.0

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {
            "hidden_units": [64, 32],
            "dropout": 0.1,
            "learning_rate": 1e-3,
            "epochs": 150,
            "batch_size": 32,
            "patience": 15,
            "validation_fraction": 0.15,
            "l2": 1e-4,
        }

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        return set(cls.default_params(task)) | DP_PARAMS

    @classmethod
    def is_private(cls, params: Mapping[str, Any]) -> bool:
        return bool(params.get("dp"))

    @classmethod
    def resolve_params(
        cls,
        member: str,
        params: Mapping[str, Any],
        schema: Schema,
        trusted: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """With ``dp``, refuse numeric columns without given bounds (`accord.members.dp.check_bounds`)."""
        if params.get("dp"):
            check_bounds(f"member {member!r} (kind {cls.kind})", params, schema)
        return dict(params)

    # Seconds per training row and epoch of the default network on one core (3,264 rows, 3 classes).
    epoch_row_seconds: ClassVar[float] = 2.7e-5

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Start-up, then the epochs a fit likely runs (`expected_epochs`) x training rows."""
        rows = shape.rows * (1 - float(params["validation_fraction"]))
        return 1.0 + cls.epoch_row_seconds * cls.expected_epochs(params) * rows

    @classmethod
    def expected_epochs(cls, params: Mapping[str, Any]) -> int:
        """Epochs one fit likely runs: early stopping mostly ends within three patiences."""
        return min(int(params["epochs"]), 3 * int(params["patience"]))

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        def fail(key: str, expected: str) -> None:
            raise ConfigError(
                f"member {member!r} (kind keras_mlp): parameter {key!r} must be {expected}; "
                f"found {params[key]!r}."
            )

        units = params["hidden_units"]
        if not isinstance(units, list) or not units or not all(isinstance(u, int) and u > 0 for u in units):
            fail("hidden_units", "a non-empty list of positive integers, e.g. [64, 32]")
        for key in ("epochs", "batch_size", "patience"):
            if not isinstance(params[key], int) or params[key] < 1:
                fail(key, "a positive integer")
        for key, low, high in (("dropout", 0.0, 0.95), ("validation_fraction", 0.0, 0.5)):
            if not isinstance(params[key], int | float) or not low <= params[key] <= high:
                fail(key, f"a number in [{low}, {high}]")
        for key in ("learning_rate", "l2"):
            if not isinstance(params[key], int | float) or params[key] < 0:
                fail(key, "a non-negative number")
        used = sorted(DP_PARAMS & {k for k, v in params.items() if v not in (None, {})})
        if used and cls.kind != "keras_mlp":
            raise ConfigError(
                f"member {member!r} (kind {cls.kind}): {used} are keras_mlp's only; leave them out."
            )
        if params.get("dp") is not None:
            check_dp(
                f"member {member!r} (kind {cls.kind})", task, params["dp"], {**DP_PARAM_DEFAULTS, **params}
            )

    def _build(self, n_inputs: int) -> Any:
        keras = import_keras(self.threads)
        p = self.params
        reg = keras.regularizers.L2(p["l2"]) if p["l2"] else None
        inputs = keras.Input(shape=(n_inputs,), name="features")
        x = inputs
        for i, units in enumerate(p["hidden_units"]):
            x = keras.layers.Dense(
                units,
                activation="relu",
                kernel_regularizer=reg,
                kernel_initializer=keras.initializers.GlorotUniform(seed=self.seed + i),
                name=f"body_dense_{i}",
            )(x)
            if p["dropout"]:
                x = keras.layers.Dropout(p["dropout"], seed=self.seed + 100 + i, name=f"body_dropout_{i}")(x)
        model = keras.Model(inputs, self._head(x), name="accord_mlp")
        self._compile(model, p["learning_rate"])
        return model

    def _head(self, features: Any, seed_offset: int = 99) -> Any:
        """The task's output layer (softmax over classes, or one linear unit) applied to `features`."""
        keras = import_keras(self.threads)
        init = keras.initializers.GlorotUniform(seed=self.seed + seed_offset)
        if self.task == "classification":
            return keras.layers.Dense(
                self.n_classes, activation="softmax", kernel_initializer=init, name="head"
            )(features)
        return keras.layers.Dense(1, kernel_initializer=init, name="head")(features)

    def _loss(self) -> str:
        return "sparse_categorical_crossentropy" if self.task == "classification" else "mean_squared_error"

    def _compile(self, model: Any, learning_rate: float) -> None:
        """Compile `model` for training: Adam at `learning_rate`, the task's loss, `STEPS_PER_EXECUTION`."""
        keras = import_keras(self.threads)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=self._loss(),
            steps_per_execution=STEPS_PER_EXECUTION,
        )

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        """Class indices, or the standardised regression target (its mean and scale are saved)."""
        if self.task == "regression":
            self.y_mean_ = float(np.mean(y))
            self.y_std_ = float(np.std(y)) or 1.0
            return ((y - self.y_mean_) / self.y_std_).astype("float32")
        return np.asarray(y, dtype="int64")

    def _train(self, model: Any, Xt: np.ndarray, target: np.ndarray, epochs: int) -> None:
        """Fit on a seeded shuffle with early stopping on a validation slice."""
        import tensorflow as tf

        keras = import_keras(self.threads)
        order = np.random.default_rng(self.seed).permutation(len(Xt))
        n_valid = int(len(Xt) * self.params["validation_fraction"])
        valid, train = order[:n_valid], order[n_valid:]
        # tf.data pipelines: Keras' NumPy adapter costs ~5x more per epoch on small tables.
        train_ds = (
            tf.data.Dataset.from_tensor_slices((Xt[train], target[train]))
            .shuffle(len(train), seed=self.seed, reshuffle_each_iteration=True)
            .batch(self.params["batch_size"])
        )
        callbacks = []
        validation = None
        if n_valid > 0:
            validation = tf.data.Dataset.from_tensor_slices((Xt[valid], target[valid])).batch(4096).cache()
            callbacks.append(
                keras.callbacks.EarlyStopping(patience=self.params["patience"], restore_best_weights=True)
            )
        model.fit(
            train_ds,
            validation_data=validation,
            epochs=epochs,
            callbacks=callbacks,
            shuffle=False,  # the dataset reshuffles itself each epoch, seeded
            verbose=0,
        )

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        keras = import_keras(self.threads)
        keras.utils.set_random_seed(self.seed)
        if self.params.get("dp"):
            return self._fit_private(X, y, schema)
        self.prep_ = make_preprocessor(schema, encoding="onehot", scale=True)
        Xt = np.asarray(self.prep_.fit_transform(X, y), dtype="float32")  # y: target encoding
        target = self._encode_target(y)
        self.model_ = self._build(Xt.shape[1])
        self._train(self.model_, Xt, target, self.params["epochs"])
        return self

    def _fit_private(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        """DP-SGD (`dp_train`) on features from the given bounds; no early stopping on private rows."""
        params = {**DP_PARAM_DEFAULTS, **self.params}
        dp = params["dp"]
        if dp.get("noise_multiplier") is None:
            raise ConfigError(
                f"{self.kind}: its noise multiplier was not calibrated before training (accounted)."
            )
        self.columns_ = [c.to_dict() for c in schema.columns]
        Xt = np.asarray(bounded_design(X, self.columns_, params["feature_bounds"]), dtype="float32")
        self.model_ = self._build(Xt.shape[1])
        dp_train(
            self.model_,
            Xt,
            np.asarray(y, dtype="int64"),
            clip=float(dp["l2_norm_clip"]),
            noise_multiplier=float(dp["noise_multiplier"]),
            sample_rate=float(params["sample_rate"]),
            steps=steps_of(params),
            learning_rate=float(params["learning_rate"]),
            l2=float(params["l2"]),
            rng=np.random.default_rng(secrets.randbits(128)),  # never from the seed: see `private_rng`
            on_step=self.on_step,
        )
        return self

    def _features(self, X: pd.DataFrame) -> np.ndarray:
        """The network's input: the bounded design of a DP member, else the fitted preprocessing."""
        if self.columns_ is not None:
            bounds = {**DP_PARAM_DEFAULTS, **self.params}["feature_bounds"]
            return np.asarray(bounded_design(X, self.columns_, bounds), dtype="float32")
        return np.asarray(self.prep_.transform(X), dtype="float32")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        Xt = self._features(X)
        chunks = [
            np.asarray(self.model_(Xt[i : i + PREDICT_CHUNK], training=False), dtype="float64")
            for i in range(0, max(len(Xt), 1), PREDICT_CHUNK)
        ]
        out = np.concatenate(chunks) if len(Xt) else np.zeros((0, self.n_classes or 1))
        if self.task == "regression":
            return out.reshape(-1) * self.y_std_ + self.y_mean_
        out = np.clip(out, 0.0, 1.0)
        return out / out.sum(axis=1, keepdims=True)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "y_mean": self.y_mean_, "y_std": self.y_std_}

    def save(self) -> dict[str, bytes]:
        if self.columns_ is not None:
            return {
                DESIGN_FILE: json.dumps(self.columns_).encode(),
                MODEL_FILE: save_keras_archive(self.model_),
            }
        return {
            PREPROCESS_FILE: skops_io.dumps(self.prep_),
            MODEL_FILE: save_keras_archive(self.model_),
        }

    @classmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        member = cls.from_info(info)
        if DESIGN_FILE in files:
            try:
                member.columns_ = list(json.loads(files[DESIGN_FILE]))
            except ValueError as e:
                raise IntegrityError(f"keras_mlp {DESIGN_FILE} is not JSON: {e}") from e
        else:
            member.prep_ = skops_io.loads(files[PREPROCESS_FILE], where=f"keras_mlp {PREPROCESS_FILE}")
        member.model_ = load_keras_archive(files[MODEL_FILE], where=f"keras_mlp {MODEL_FILE}")
        member.y_mean_ = float(info.get("y_mean", 0.0))
        member.y_std_ = float(info.get("y_std", 1.0))
        return member


class KerasCNN(KerasMLP):
    """A small convolutional network for square images given as pixel columns (e.g. sklearn:digits)."""

    kind: ClassVar[str] = "keras_cnn"
    epoch_row_seconds: ClassVar[float] = 4 * KerasMLP.epoch_row_seconds  # convolutions over every pixel

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {**super().default_params(task), "filters": [16, 32], "hidden_units": [64], "dropout": 0.2}

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        super().check_values(member, task, params)
        filters = params["filters"]
        if (
            not isinstance(filters, list)
            or not filters
            or not all(isinstance(f, int) and f > 0 for f in filters)
        ):
            raise ConfigError(
                f"member {member!r} (kind keras_cnn): parameter 'filters' must be a non-empty list of "
                f"positive integers, e.g. [16, 32]; found {filters!r}."
            )

    @classmethod
    def resolve_params(
        cls,
        member: str,
        params: Mapping[str, Any],
        schema: Schema,
        trusted: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        n = len(schema.columns)
        side = round(n**0.5)
        if side * side != n or schema.categorical:
            raise ConfigError(
                f"member {member!r} (kind keras_cnn) needs square images as numeric pixel columns; "
                f"found {n} columns ({len(schema.categorical)} categorical). Use keras_mlp for tables."
            )
        return dict(params)

    def _build(self, n_inputs: int) -> Any:
        keras = import_keras(self.threads)
        p = self.params
        side = round(n_inputs**0.5)
        inputs = keras.Input(shape=(n_inputs,), name="features")
        x = keras.layers.Reshape((side, side, 1), name="body_image")(inputs)
        for i, f in enumerate(p["filters"]):
            init = keras.initializers.GlorotUniform(seed=self.seed + i)
            x = keras.layers.Conv2D(f, 3, padding="same", kernel_initializer=init, name=f"body_conv_{i}")(x)
            x = keras.layers.BatchNormalization(name=f"body_bn_{i}")(x)
            x = keras.layers.Activation("relu", name=f"body_relu_{i}")(x)
        x = (
            keras.layers.GlobalAveragePooling2D(name="body_pool")(x)
            if side < 4
            else keras.layers.Flatten(name="body_flat")(x)
        )
        for i, units in enumerate(p["hidden_units"]):
            init = keras.initializers.GlorotUniform(seed=self.seed + 10 + i)
            x = keras.layers.Dense(units, activation="relu", kernel_initializer=init, name=f"body_dense_{i}")(
                x
            )
            if p["dropout"]:
                x = keras.layers.Dropout(p["dropout"], seed=self.seed + 100 + i, name=f"body_dropout_{i}")(x)
        model = keras.Model(inputs, self._head(x), name="accord_cnn")
        self._compile(model, p["learning_rate"])
        return model
