"""A registry of versioned models on any fsspec store.

Layout under the store URL::

    <name>/versions/<version>/manifest.json      written last; a version without it does not exist
    <name>/versions/<version>/<files...>         each written whole, hashed, then verified
    <name>/aliases/<alias>.json                  {"version": ...}

Versions are assigned here (UTC time to the millisecond plus 32 random bits), so
they sort by time and two publishers never collide. Readers verify every file's
size and sha256 against the manifest before anything is deserialised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from accord.errors import IntegrityError, InUseError, NotFoundError, PublishError
from accord.faults import failpoint
from accord.registry.locks import exclusive
from accord.registry.refs import (
    DEFAULT_ALIAS,
    ModelRef,
    check_alias,
    check_name,
    check_tags,
    check_version,
    normalise_store,
    protocols,
)
from accord.registry.signing import SIGNATURE, fingerprint, public_key_of, sign_manifest, verify_manifest

MANIFEST = "manifest.json"
FORMAT = "accord/1"
# File types a published version's model files may have; anything else is refused on read.
SAFE_SUFFIXES = (".json", ".skops", ".ubj", ".keras")
# Documents for people (the model card, figures, the report): listed apart, under the
# manifest's "documents", so `load` never reads them and readers that predate them ignore them.
DOCUMENT_SUFFIXES = (".md", ".png", ".html")


def new_version(now: dt.datetime | None = None) -> str:
    """Return a fresh, time-sortable version id such as ``20261129T021500123Z-3fa2c1d4``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(4)


def put_whole(fs: Any, local: Path, dest: str) -> None:
    """Put a finished local file at `dest` so that readers see all of it or nothing.

    On a local filesystem: copy beside `dest`, then rename (atomic on one filesystem).
    On an object store: one PUT, which becomes visible whole.
    """
    if isinstance(fs, LocalFileSystem):
        parent, _, base = dest.rpartition("/")
        fs.makedirs(parent, exist_ok=True)
        staging = f"{parent}/.{base}.{secrets.token_hex(4)}.tmp"
        fs.put_file(str(local), staging)
        fs.mv(staging, dest)
    else:
        fs.put_file(str(local), dest)


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _check_relpath(path: str, suffixes: tuple[str, ...] = SAFE_SUFFIXES) -> str:
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "\\" in path
        or "%" in path
        or any(p in ("", ".", "..") for p in path.split("/"))
    ):
        raise IntegrityError(f"file path {path!r} in a manifest is not a plain relative path.")
    if not path.endswith(suffixes):
        raise IntegrityError(f"file {path!r} has a type accord never loads; allowed: {list(suffixes)}.")
    return path


class Registry:
    """Versioned models in one store.

    Args:
        store: An fsspec URL (``file://``, ``s3://``, ``memory://``) or a local path.
        storage_options: Passed to fsspec; S3 endpoints and keys normally come from
            the environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
        stale_upload_s: Age after which an unfinished S3 multipart upload of an unpublished
            version is presumed abandoned and aborted by the next publisher.
        multipart_chunksize: S3 part size; files of at least twice this size are uploaded in
            parts. None keeps s3fs's default.
    """

    def __init__(
        self,
        store: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        stale_upload_s: float = 3600.0,
        multipart_chunksize: int | None = None,
    ) -> None:
        self.stale_upload_s = stale_upload_s
        self.multipart_chunksize = multipart_chunksize
        self.url = normalise_store(store)
        self.fs, root = url_to_fs(self.url, **dict(storage_options or {}))
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _version_dir(self, name: str, version: str) -> str:
        return self._path(check_name(name), "versions", check_version(version))

    def ref(self, name: str, version: str | None = None) -> ModelRef:
        """A reference to `name` (pinned to `version` when given) in this store."""
        return ModelRef(self.url, name, version)

    # -- writing ------------------------------------------------------------------------------
    def _put_bytes(self, data: bytes, dest: str, tmpdir: Path) -> dict[str, Any]:
        local = tmpdir / secrets.token_hex(8)
        local.write_bytes(data)
        digest = sha256(local.read_bytes())
        if self._local:
            self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        if self.multipart_chunksize and "s3" in protocols(self.fs):
            self.fs.put_file(str(local), dest, chunksize=self.multipart_chunksize)
        else:
            self.fs.put_file(str(local), dest)
        back = self.fs.cat_file(dest)
        if len(back) != len(data) or sha256(back) != digest:
            raise PublishError(f"upload of {dest!r} did not verify (size or checksum differs).")
        return {"sha256": digest, "size": len(data)}

    def publish(
        self,
        name: str,
        files: Mapping[str, bytes],
        manifest: Mapping[str, Any],
        version: str | None = None,
        documents: Mapping[str, bytes] | None = None,
        signing_key: Path | None = None,
    ) -> str:
        """Publish a new version: every file whole and verified, then the manifest last.

        Args:
            name: Model name.
            files: Relative path -> content. Paths must end in a safe suffix.
            manifest: Extra manifest fields (schema, metrics, weights, lineage, ...).
            version: The new version's id (`new_version`), when the caller wrote it into
                files already; default: a new one.
            documents: Files for people (`DOCUMENT_SUFFIXES`), written and checksummed
                like `files` but listed under the manifest's ``documents`` (`read_documents`).
            signing_key: A private key (`accord.registry.signing`) to sign the manifest with:
                the manifest names its key (``signed_by``), and the signature is written
                before the manifest, so a signed version is never seen unsigned.

        Returns:
            The new version id.

        Raises:
            PublishError: an upload failed; what was written is removed and no
                manifest exists, so readers never see the version.
        """
        check_name(name)
        for path in files:
            _check_relpath(path)
        documents = dict(documents or {})
        for path in documents:
            _check_relpath(path, DOCUMENT_SUFFIXES)
        with contextlib.suppress(Exception):  # best effort: leftovers of publishers that died
            self.abort_stale_uploads(name, self.stale_upload_s)
        version = check_version(version) if version else new_version()
        vdir = self._version_dir(name, version)
        entries: dict[str, dict[str, Any]] = {}
        try:
            with tempfile.TemporaryDirectory(prefix="accord-publish-") as tmp:
                tmpdir = Path(tmp)
                self.fs.makedirs(vdir, exist_ok=True)
                for i, path in enumerate(sorted(files)):
                    entries[path] = self._put_bytes(files[path], f"{vdir}/{path}", tmpdir)
                    if i == 0:
                        failpoint("publish:mid-files")
                written = {p: self._put_bytes(documents[p], f"{vdir}/{p}", tmpdir) for p in sorted(documents)}
                failpoint("publish:before-manifest")
                document = {
                    "format": FORMAT,
                    "name": name,
                    "version": version,
                    "created": dt.datetime.now(dt.UTC).isoformat(),
                    **dict(manifest),
                    "files": entries,
                    **({"documents": written} if written else {}),
                }
                if signing_key is not None:
                    document["signed_by"] = fingerprint(public_key_of(signing_key))
                body = json.dumps(document, indent=2, sort_keys=True, default=_json_default).encode()
                if signing_key is not None:
                    self._put_bytes(sign_manifest(body, signing_key), f"{vdir}/{SIGNATURE}", tmpdir)
                self._write_manifest(body, vdir, tmpdir)
        except Exception as e:
            self._discard(vdir)
            if isinstance(e, PublishError):
                raise
            raise PublishError(f"publishing {name!r} to {self.url} failed: {type(e).__name__}: {e}") from e
        return version

    def _write_manifest(self, body: bytes, vdir: str, tmpdir: Path) -> None:
        local = tmpdir / MANIFEST
        local.write_bytes(body)
        put_whole(self.fs, local, f"{vdir}/{MANIFEST}")

    def abort_stale_uploads(self, name: str, older_than: float = 3600.0) -> int:
        """Abort incomplete S3 multipart uploads of `name`'s unpublished versions; return how many.

        A publisher aborts its own upload when a part fails, unless the endpoint is gone
        by then; such leftovers are aborted here by the next publisher once their version
        id (a timestamp) is older than `older_than` seconds, so a publish still in progress
        elsewhere is left alone.
        """
        if "s3" not in protocols(self.fs):
            return 0
        bucket, _, prefix = self._path(check_name(name), "versions").partition("/")
        listing = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix + "/")
        now = dt.datetime.now(dt.UTC)
        aborted = 0
        for upload in listing.get("Uploads", []):
            version = upload["Key"][len(prefix) + 1 :].split("/")[0]
            try:
                started = dt.datetime.strptime(check_version(version)[:18], "%Y%m%dT%H%M%S%f").replace(
                    tzinfo=dt.UTC
                )
            except Exception:
                continue
            if (now - started).total_seconds() < older_than:
                continue
            if self.fs.exists(f"{bucket}/{prefix}/{version}/{MANIFEST}"):
                continue
            self.fs.call_s3(
                "abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            aborted += 1
        return aborted

    def _discard(self, vdir: str) -> None:
        try:
            if self.fs.exists(vdir):
                self.fs.rm(vdir, recursive=True)
        except Exception:  # best effort: without a manifest the leftovers are invisible anyway
            pass

    # -- reading ------------------------------------------------------------------------------
    def _refresh(self) -> None:
        self.fs.invalidate_cache()

    def names(self) -> list[str]:
        """Model names that have at least one complete version."""
        self._refresh()
        found = self.fs.glob(self._path("*", "versions", "*", MANIFEST))
        return sorted({p[len(self.root) + 1 :].split("/")[0] for p in found})

    def versions(self, name: str) -> list[str]:
        """Complete versions of `name`, oldest first."""
        check_name(name)
        self._refresh()
        found = self.fs.glob(self._path(name, "versions", "*", MANIFEST))
        out = []
        for p in found:
            version = p.rstrip("/").split("/")[-2]
            try:
                out.append(check_version(version))
            except Exception:
                continue
        return sorted(out)

    def resolve(self, ref: ModelRef) -> str:
        """Return the version a reference points to; see `resolution`."""
        return self.resolution(ref)[0]

    def resolution(self, ref: ModelRef) -> tuple[str, str]:
        """The version a reference points to, and how it was chosen, for people.

        A pinned ``:version`` is that version; ``@alias`` is the version the alias points
        to; a bare name is the version its ``production`` alias (`DEFAULT_ALIAS`) points to
        when that alias is set, else the newest version. A bare name thus never scores with
        a version that was published but not promoted while a promoted one exists.

        Raises:
            NotFoundError: no such model, version or alias.
        """
        if ref.version:
            if not self.fs.exists(f"{self._version_dir(ref.name, ref.version)}/{MANIFEST}"):
                raise NotFoundError(f"version {ref.version} of {ref.name!r} not found in {self.url}.")
            return ref.version, "pinned"
        if ref.alias:
            version = self.get_alias(ref.name, ref.alias)
            if version is None:
                raise NotFoundError(f"alias {ref.alias!r} of {ref.name!r} is not set in {self.url}.")
            return version, f"alias {ref.alias!r}"
        promoted = self.get_alias(ref.name, DEFAULT_ALIAS)
        if promoted is not None:
            return promoted, f"alias {DEFAULT_ALIAS!r}, which a bare name means when it is set"
        versions = self.versions(ref.name)
        if not versions:
            raise NotFoundError(
                f"model {ref.name!r} has no published version in {self.url}; "
                f"known models: {self.names()[:20]}."
            )
        return versions[-1], f"the newest version; alias {DEFAULT_ALIAS!r} is not set"

    def read_manifest(self, name: str, version: str) -> dict[str, Any]:
        """Read and sanity-check a version's manifest."""
        return self._parse_manifest(self._manifest_bytes(name, version), name, version)

    def _manifest_bytes(self, name: str, version: str) -> bytes:
        path = f"{self._version_dir(name, version)}/{MANIFEST}"
        try:
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError as e:
            raise NotFoundError(f"version {version} of {name!r} not found in {self.url}.") from e

    def signature(self, name: str, version: str) -> bytes | None:
        """A version's signature file (`accord.registry.signing`), or None when it is unsigned."""
        try:
            return bytes(self.fs.cat_file(f"{self._version_dir(name, version)}/{SIGNATURE}"))
        except FileNotFoundError:
            return None

    def _parse_manifest(self, raw: bytes, name: str, version: str) -> dict[str, Any]:
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError as e:
            raise IntegrityError(f"manifest of {name}:{version} is not valid JSON: {e}") from e
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IntegrityError(f"manifest of {name}:{version} is not an {FORMAT} manifest.")
        if manifest.get("name") != name or manifest.get("version") != version:
            raise IntegrityError(
                f"manifest at {name}:{version} describes {manifest.get('name')}:{manifest.get('version')}."
            )
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise IntegrityError(f"manifest of {name}:{version} lists no files.")
        for path in files:
            _check_relpath(path)
        for path in manifest.get("documents") or {}:
            _check_relpath(path, DOCUMENT_SUFFIXES)
        return manifest

    def read_files(self, name: str, version: str, manifest: Mapping[str, Any]) -> dict[str, bytes]:
        """Read every file of a version and verify size and sha256 against the manifest.

        Raises:
            IntegrityError: a file is missing, of another size, or its checksum differs.
        """
        return self._read_verified(name, version, manifest.get("files"), SAFE_SUFFIXES)

    def read_documents(self, name: str, version: str, manifest: Mapping[str, Any]) -> dict[str, bytes]:
        """Read a version's documents (card, figures, report), verified as `read_files` does; {} if none."""
        return self._read_verified(name, version, manifest.get("documents") or {}, DOCUMENT_SUFFIXES)

    def _read_verified(
        self, name: str, version: str, files: Any, suffixes: tuple[str, ...]
    ) -> dict[str, bytes]:
        vdir = self._version_dir(name, version)
        if not isinstance(files, dict):
            raise IntegrityError(f"{name}:{version}: the manifest has no file list.")
        for path in files:  # every listed path, before any is read: no traversal, no unsafe format
            _check_relpath(path, suffixes)
        out: dict[str, bytes] = {}
        for path, entry in sorted(files.items()):
            try:
                data = self.fs.cat_file(f"{vdir}/{path}")
            except FileNotFoundError as e:
                raise IntegrityError(
                    f"{name}:{version}: file {path!r} listed in the manifest is missing."
                ) from e
            if len(data) != entry.get("size") or sha256(data) != entry.get("sha256"):
                raise IntegrityError(
                    f"{name}:{version}: file {path!r} failed verification (expected sha256 "
                    f"{str(entry.get('sha256'))[:12]}…, {entry.get('size')} bytes; found "
                    f"{sha256(data)[:12]}…, {len(data)} bytes). Refusing to load a tampered or "
                    "corrupted file."
                )
            out[path] = data
        return out

    def fetch(
        self,
        ref: ModelRef,
        trusted: Mapping[str, bytes] | None = None,
        manifest_sha256: str | None = None,
    ) -> tuple[ModelRef, dict[str, Any], dict[str, bytes]]:
        """Resolve `ref`, read its manifest and every file, verified; return the pinned ref too.

        The manifest returned also holds ``ref`` (the pinned reference), ``resolved`` (how
        the version was chosen, see `resolution`), ``manifest_sha256`` (of its bytes as
        stored) and, where it was checked, ``verified_signer`` (the fingerprint of the key
        that signed it).

        Args:
            ref: The reference.
            trusted: Public keys by fingerprint (`accord.registry.signing.trusted_keys`): the
                manifest's bytes must carry a signature by one of them, checked before the
                manifest is parsed or any file read.
            manifest_sha256: The manifest's bytes must hash to this (a version checked
                earlier, in another process, must be the version read now).

        Raises:
            NotFoundError: no such model, version or alias.
            IntegrityError: a file is missing or fails its checksum, or the manifest is not
                the one `manifest_sha256` names.
            SignatureError: the version is unsigned, signed by another key, or changed
                since it was signed.
        """
        version, how = self.resolution(ref)
        raw = self._manifest_bytes(ref.name, version)
        pinned = ref.at_version(version)
        if manifest_sha256 is not None and sha256(raw) != manifest_sha256:
            raise IntegrityError(
                f"{pinned}: its manifest changed since it was checked (sha256 {sha256(raw)[:12]}…, "
                f"expected {manifest_sha256[:12]}…); refusing to load it."
            )
        signer = None
        if trusted:
            signer = verify_manifest(str(pinned), raw, self.signature(ref.name, version), dict(trusted))
        manifest = self._parse_manifest(raw, ref.name, version)
        files = self.read_files(ref.name, version, manifest)
        manifest["ref"] = str(pinned)
        manifest["resolved"] = how
        manifest["manifest_sha256"] = sha256(raw)
        if signer is not None:
            manifest["verified_signer"] = signer
        return pinned, manifest, files

    # -- aliases ------------------------------------------------------------------------------
    def get_alias(self, name: str, alias: str) -> str | None:
        """The version an alias points to, or None."""
        path = self._path(check_name(name), "aliases", f"{check_name(alias, 'alias')}.json")
        try:
            data = json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        return check_version(str(data["version"]))

    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version for every alias of `name`."""
        self._refresh()
        out: dict[str, str] = {}
        for path in self.fs.glob(self._path(check_name(name), "aliases", "[!.]*.json")):
            alias = path.rsplit("/", 1)[1].removesuffix(".json")
            version = self.get_alias(name, alias)
            if version:
                out[alias] = version
        return out

    def alias_lock(
        self, name: str, alias: str, timeout: float = 120.0, stale: float = 300.0
    ) -> contextlib.AbstractContextManager[None]:
        """Hold an exclusive lock on one alias, across processes, for a read-compare-write.

        See `accord.registry.locks.exclusive`: an OS file lock on a local disk, a conditional
        object on S3 (taken over once older than `stale` seconds), a process lock elsewhere.

        Raises:
            PublishError: the lock was not free within `timeout` seconds.
        """
        path = self._path(check_name(name), "aliases", f".{check_name(alias, 'alias')}.lock")
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return exclusive(self.fs, path, timeout=timeout, stale=stale, what=f"alias {alias!r} of {name!r}")

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` at an existing `version`.

        Raises:
            ModelReferenceError: the alias reads as a version (`check_alias`).
            NotFoundError: no such version.
        """
        check_alias(alias)
        self.resolve(ModelRef(self.url, name, version))
        path = self._path(check_name(name), "aliases", f"{alias}.json")
        self._put_json({"version": version, "updated": dt.datetime.now(dt.UTC).isoformat()}, path)

    def _put_json(self, document: Mapping[str, Any], path: str) -> None:
        """Write a small JSON object whole: a local temp file, then one put."""
        with tempfile.TemporaryDirectory(prefix="accord-meta-") as tmp:
            local = Path(tmp) / "doc.json"
            local.write_text(json.dumps(document, sort_keys=True))
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(local), path)

    def delete_alias(self, name: str, alias: str) -> str:
        """Unset `alias` of `name`, under its lock; return the version it pointed to.

        Raises:
            NotFoundError: the alias is not set.
        """
        with self.alias_lock(name, alias):
            version = self.get_alias(name, alias)
            if version is None:
                raise NotFoundError(
                    f"alias {alias!r} of {name!r} is not set in {self.url}; "
                    f"set ones: {sorted(self.aliases(name))}."
                )
            self.fs.rm(self._path(name, "aliases", f"{alias}.json"))
        return version

    def delete_version(self, name: str, version: str) -> None:
        """Delete a version: its manifest first (readers stop seeing it), then its files and notes.

        Raises:
            NotFoundError: no such version.
            InUseError: an alias points at it (named): move or delete the alias first.
        """
        self.resolve(ModelRef(self.url, name, check_version(version)))
        with contextlib.ExitStack() as held:  # no alias moves onto it between the check and the delete
            for alias in sorted(self.aliases(name)):
                held.enter_context(self.alias_lock(name, alias))
            pointing = sorted(a for a, v in self.aliases(name).items() if v == version)
            if pointing:
                raise InUseError(
                    f"{name}:{version} is what alias {pointing[0]!r} points to"
                    + (f" (and {pointing[1:]})" if pointing[1:] else "")
                    + "; delete or move the alias first: "
                    + f"accord models unalias {self.url}/{name}@{pointing[0]}."
                )
            vdir = self._version_dir(name, version)
            self.fs.rm(f"{vdir}/{MANIFEST}")
        self._discard(vdir)
        with self._notes_lock(name, version), contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._notes_path(name, version))

    # -- notes: tags and a description that may change after publishing -----------------------
    def _notes_path(self, name: str, version: str) -> str:
        return self._path(check_name(name), "notes", f"{check_version(version)}.json")

    def _notes_lock(self, name: str, version: str) -> contextlib.AbstractContextManager[None]:
        lock = self._path(name, "notes", f".{check_version(version)}.lock")
        self.fs.makedirs(lock.rsplit("/", 1)[0], exist_ok=True)
        return exclusive(self.fs, lock, timeout=120.0, stale=300.0, what=f"notes of {name}:{version}")

    def notes(self, name: str, version: str, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A version's ``tags`` and ``description``: those of its run's config, as changed since.

        Why apart from the manifest: the manifest is whole and checksummed once; notes change.
        """
        manifest = manifest if manifest is not None else self.read_manifest(name, version)
        config = manifest.get("lineage", {}).get("config") or {}
        out = {"tags": dict(config.get("tags") or {}), "description": config.get("description")}
        try:
            changed = json.loads(self.fs.cat_file(self._notes_path(name, version)))
        except FileNotFoundError:
            return out
        out["tags"] = changed.get("tags", out["tags"])
        out["description"] = changed.get("description", out["description"])
        return out

    def set_notes(
        self,
        name: str,
        version: str,
        *,
        tags: Mapping[str, str] | None = None,
        untag: list[str] | tuple[str, ...] = (),
        description: str | None = None,
    ) -> dict[str, Any]:
        """Add or change `tags`, remove the `untag` keys and/or replace the description; return the notes.

        Read, change and write happen under a lock of the version's notes, so two at once
        never lose an update.

        Raises:
            NotFoundError: no such version.
            ModelReferenceError: a bad tag key or value (`check_tags`).
        """
        check_tags(dict(tags or {}))
        path = self._notes_path(name, version)
        with self._notes_lock(name, version):
            notes = self.notes(name, version)  # NotFoundError once the version is deleted
            notes["tags"] = {k: v for k, v in {**notes["tags"], **(tags or {})}.items() if k not in untag}
            if description is not None:
                notes["description"] = description
            self._put_json(notes, path)
        return notes


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["MANIFEST", "Registry", "new_version", "sha256"]
