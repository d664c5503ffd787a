"""Parents of transfer and published members: resolve, pin, load and check compatibility.

A parent is a published accord version. At prepare time its reference is pinned to
a version (aliases move; a run must not), its files are verified, and its schema,
task and classes are checked against ours, so an incompatible parent fails before
any training with a message naming the mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from accord.data.schema import Schema
from accord.errors import ConfigError
from accord.members.bagged import Bagged


def pin(ref: Any, member: str) -> str:
    """Resolve a parent reference to a pinned ``<store>/<name>:<version>`` string."""
    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry

    if not isinstance(ref, str) or not ref:
        raise ConfigError(
            f"member {member!r}: parameter 'parent' must be a model reference such as "
            "file:///srv/registry/source@production; found {ref!r}."
        )
    parsed = parse_ref(ref)
    version = Registry(parsed.store).resolve(parsed)
    return str(parsed.at_version(version))


# The parameters `resolve_parent` adds where a parent's signature was checked: the version
# the flow checked is the version a worker loads (`load_parent`), and lineage names its signer.
SIGNER, MANIFEST_SHA256 = "parent_signer", "parent_manifest_sha256"
CHECKED = (SIGNER, MANIFEST_SHA256)


def load_parent(
    ref: str, *, trusted: Mapping[str, bytes] | None = None, manifest_sha256: str | None = None
) -> Any:
    """Load a pinned parent ensemble (checksums verified, safe formats).

    Args:
        ref: The pinned reference.
        trusted: Public keys by fingerprint; the version must be signed by one of them.
        manifest_sha256: The manifest's bytes must hash to this (the version the flow checked).
    """
    from accord.ensembling.ensemble import load

    keys = [pem.decode() for pem in trusted.values()] if trusted else None
    return load(ref, trusted_keys=keys, manifest_sha256=manifest_sha256)


def parent_record(params: Mapping[str, Any], key: str, relation: str) -> dict[str, Any]:
    """What lineage records of a member's parent: its reference, the relation, and its checked signer."""
    record = {"ref": params[key], "relation": relation}
    if params.get(SIGNER):
        record.update(signer=params[SIGNER], manifest_sha256=params[MANIFEST_SHA256])
    return record


def pick_member(parent: Any, kinds: Iterable[str], wanted: str | None, member: str) -> tuple[str, Any]:
    """The parent's member to start from: `wanted` by name, else the first of an accepted kind.

    Raises:
        ConfigError: no such member, or one of another kind, or a bag of fold models
            (a transfer starts from one model).
    """
    name, chosen = _pick(parent, tuple(kinds), wanted, member)
    if isinstance(chosen, Bagged):
        raise ConfigError(
            f"member {member!r}: parent member {name!r} of {parent.manifest.get('ref')} is a bag of "
            f"{len(chosen.models)} fold models (published with final: bag); a transfer starts from one "
            "model. Publish the parent with final: refit."
        )
    return name, chosen


def _pick(parent: Any, kinds: tuple[str, ...], wanted: str | None, member: str) -> tuple[str, Any]:
    if wanted is not None:
        if wanted not in parent.members:
            raise ConfigError(
                f"member {member!r}: parent {parent.manifest.get('ref')} has no member {wanted!r}; "
                f"it has {list(parent.members)}."
            )
        chosen = parent.members[wanted]
        if chosen.kind not in kinds:
            raise ConfigError(
                f"member {member!r}: parent member {wanted!r} is a {chosen.kind}; "
                f"expected one of {list(kinds)}."
            )
        return wanted, chosen
    for name, candidate in parent.members.items():
        if candidate.kind in kinds:
            return name, candidate
    raise ConfigError(
        f"member {member!r}: parent {parent.manifest.get('ref')} has no member of kind {list(kinds)}; "
        f"its members are {[(n, m.kind) for n, m in parent.members.items()]}."
    )


def check_compatible(parent_schema: Schema, ours: Schema, member: str, *, same_classes: bool) -> None:
    """Refuse a parent whose input columns, task or classes do not fit our data."""
    ref = "the parent"
    problems: list[str] = []
    if parent_schema.task != ours.task:
        problems.append(f"{ref} does {parent_schema.task}, this run does {ours.task}")
    mine = {c.name: c for c in ours.columns}
    missing = [c.name for c in parent_schema.columns if c.name not in mine]
    if missing:
        shown = missing[:10] + (["…"] if len(missing) > 10 else [])
        problems.append(
            f"columns the parent needs are missing here: {shown} "
            f"(parent has {len(parent_schema.columns)} feature columns, this data {len(ours.columns)})"
        )
    kinds = [
        f"{c.name!r} is {c.kind} in the parent but {mine[c.name].kind} here"
        for c in parent_schema.columns
        if c.name in mine and mine[c.name].kind != c.kind
    ]
    problems.extend(kinds[:5])
    if same_classes and ours.task == "classification" and list(parent_schema.classes) != list(ours.classes):
        problems.append(
            f"classes differ: parent {list(parent_schema.classes)}, this data {list(ours.classes)}"
        )
    if problems:
        raise ConfigError(f"member {member!r}: incompatible parent: " + "; ".join(problems) + ".")


def resolve_parent(
    member: str,
    params: Mapping[str, Any],
    schema: Schema,
    key: str,
    kinds: Iterable[str] | None,
    *,
    same_classes: bool,
    trusted: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """Pin ``params[key]`` to a version, check the parent (and its member of `kinds`) fits `schema`.

    With `trusted` keys the parent's version must be signed by one of them, checked before
    anything of it is deserialised; the signer's fingerprint and the manifest's sha256 are
    added to the parameters (`CHECKED`), so workers load that very version.

    Raises:
        ConfigError: the reference is malformed, or the parent does not fit.
        SignatureError: with `trusted`, the parent is unsigned, signed by another key, or
            changed since it was signed; the message names the member.
    """
    from accord.registry.signing import SignatureError

    pinned = pin(params.get(key), member)
    try:
        parent = load_parent(pinned, trusted=trusted)
    except SignatureError as e:
        raise SignatureError(f"member {member!r}: parent {e}") from e
    if kinds is not None:
        pick_member(parent, kinds, params.get("parent_member"), member)
    check_compatible(parent.schema, schema, member, same_classes=same_classes)
    checked = (
        {SIGNER: parent.manifest["verified_signer"], MANIFEST_SHA256: parent.manifest["manifest_sha256"]}
        if trusted
        else {}
    )
    own = {k: v for k, v in params.items() if k not in CHECKED}
    return {**own, key: pinned, **checked}
