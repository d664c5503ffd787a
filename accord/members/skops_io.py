"""scikit-learn objects in and out of skops files, with an explicit trusted-type list.

skops stores an object graph as data, never as pickle opcodes. On load we ask
skops which types the file would construct and refuse the file if any is not
on our list, before anything is constructed.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from accord.errors import IntegrityError

BASIC_TYPES: frozenset[str] = frozenset(
    f"builtins.{t}" for t in ("dict", "list", "tuple", "str", "int", "float", "bool", "NoneType", "bytes")
)
# Every type our members' pipelines contain. skops would trust all of scikit-learn by
# default; accord trusts only these, checked against the file's schema before loading.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.slice",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.uint64",
        "numpy.random.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random._mt19937.MT19937",
        "scipy.sparse._csr.csr_matrix",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._target_encoder.TargetEncoder",
        "sklearn.model_selection._split.KFold",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.svm._classes.SVC",
        "sklearn.svm._classes.SVR",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)


def dumps(obj: Any) -> bytes:
    """Serialise a scikit-learn object to skops bytes, its arrays deflated at zlib's fastest level.

    Forests are mostly arrays of node indices, which deflate well: less to hold in a worker,
    send to the flow, hash, cache and publish, for a little time to write and read.
    Measurements: docs/performance.md.

    Args:
        obj: A fitted scikit-learn object (a member's pipeline or preprocessing).

    Returns:
        The skops file's bytes, for `loads`.
    """
    import skops.io as sio

    return bytes(sio.dumps(obj, compression=zipfile.ZIP_DEFLATED, compresslevel=1))


def types_in(data: bytes) -> set[str]:
    """Every type a skops file would construct, read from its JSON schema (nothing is constructed)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IntegrityError(f"not a valid skops file: {type(e).__name__}: {e}") from e
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops file that are not on accord's explicit list."""
    return sorted(t for t in types_in(data) if t not in TRUSTED_TYPES and t not in BASIC_TYPES)


def loads(data: bytes, *, where: str = "skops file") -> Any:
    """Load skops bytes, refusing any type outside `TRUSTED_TYPES` before constructing anything.

    Raises:
        IntegrityError: the file is malformed or names an untrusted type.
    """
    import skops.io as sio

    bad = untrusted_types(data)
    if bad:
        raise IntegrityError(f"{where} contains types accord does not trust: {bad}; refusing to load it.")
    found = sio.get_untrusted_types(data=data)
    return sio.loads(data, trusted=found)
