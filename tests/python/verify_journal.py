#!/usr/bin/env python3
"""Independent verifier of a Tollgate audit journal (tollgate.audit/v1).

Written from docs/audit-format.md alone. Usage:

    verify_journal.py DIR [--public-key FILE ...] [--anchor FILE ...]

Exit codes: 0 intact, 1 tampered, 2 unreadable. Prints the verdict and the
problems found, one per line. Reads the live segments only (not an archive).
"""

import argparse
import base64
import gzip
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SCHEMA = "tollgate.audit/v1"
GENESIS = bytes(32)
SUFFIX_HEAD = b',"hash":"'
SUFFIX_LEN = len(SUFFIX_HEAD) + 64 + 2
HEX64 = re.compile(rb"^[0-9a-f]{64}$")
SEGMENT = re.compile(r"^seg-(\d{20})\.jsonl(\.gz)?$")
DELETION_VERBS = ("segment-deleted", "segment-dropped", "archive-expired")


class Unreadable(Exception):
    pass


class Bad(Exception):
    pass


def key_id(raw):
    return hashlib.sha256(raw).digest()[:8].hex()


def load_key(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) == 32:
        raw = data
    else:
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise Unreadable(f"{path}: not an Ed25519 public key")
        raw = key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    return key_id(raw), Ed25519PublicKey.from_public_bytes(raw)


def reject_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise Bad(f"duplicate field {k!r}")
        out[k] = v
    return out


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_record(line):
    """Splits and self-checks one line (without its newline)."""
    if len(line) < SUFFIX_LEN:
        raise Bad("no hash field at the end of the record")
    canonical, suffix = line[:-SUFFIX_LEN], line[-SUFFIX_LEN:]
    digits = suffix[len(SUFFIX_HEAD):-2]
    if (
        not suffix.startswith(SUFFIX_HEAD)
        or not suffix.endswith(b'"}')
        or not HEX64.match(digits)
        or not canonical.startswith(b"{")
    ):
        raise Bad("no hash field at the end of the record")
    try:
        env = json.loads(
            (canonical + b"}").decode("utf-8"), object_pairs_hook=reject_duplicates
        )
    except (ValueError, UnicodeDecodeError) as e:
        raise Bad(f"malformed record: {e}")
    if not isinstance(env, dict):
        raise Bad("malformed record: not an object")
    seq, prev, kind = env.get("seq"), env.get("prev"), env.get("kind")
    if not is_uint(seq) or not isinstance(env.get("time"), str):
        raise Bad("malformed record: seq or time")
    if not isinstance(prev, str) or not HEX64.match(prev.encode()):
        raise Bad("malformed prev hash")
    stored = bytes.fromhex(digits.decode())
    if hashlib.sha256(bytes.fromhex(prev) + canonical).digest() != stored:
        raise Bad("the record's content does not match its hash (edited)")
    event, checkpoint = env.get("event"), env.get("checkpoint")
    if kind == "event" and isinstance(event, dict) and checkpoint is None:
        pass
    elif kind == "checkpoint" and isinstance(checkpoint, dict) and event is None:
        check_checkpoint_fields(checkpoint)
    else:
        raise Bad("malformed record: kind without exactly its matching body")
    return {
        "seq": seq,
        "prev": bytes.fromhex(prev),
        "hash": stored,
        "event": event,
        "checkpoint": checkpoint,
    }


def check_checkpoint_fields(cp):
    for name, ok in (
        ("headSeq", is_uint),
        ("headHash", lambda v: isinstance(v, str)),
        ("time", lambda v: isinstance(v, str)),
        ("seal", lambda v: isinstance(v, bool)),
        ("reason", lambda v: isinstance(v, str)),
        ("keyId", lambda v: isinstance(v, str)),
        ("signature", lambda v: isinstance(v, str)),
    ):
        if not ok(cp.get(name)):
            raise Bad(f"malformed checkpoint: {name}")


def signed_text(cp):
    return (
        f"{SCHEMA} checkpoint\n"
        f"seq {cp['headSeq']}\n"
        f"hash {cp['headHash']}\n"
        f"time {cp['time']}\n"
        f"seal {'true' if cp['seal'] else 'false'}\n"
        f"key {cp['keyId']}\n"
    ).encode("utf-8")


def signature_problem(keys, cp):
    key = keys.get(cp["keyId"])
    if key is None:
        return f"checkpoint signed by key {cp['keyId']}, which is not trusted"
    try:
        signature = base64.b64decode(cp["signature"], validate=True)
        key.verify(signature, signed_text(cp))
    except (InvalidSignature, ValueError):
        return f"checkpoint signature does not verify with key {cp['keyId']}"
    return None


def deletion_ranges(verb, attributes):
    """(own?, range) pairs of a deletion notice."""
    out = []
    if verb not in DELETION_VERBS or not isinstance(attributes, dict):
        return out
    own = {k: attributes.get(k) for k in ("firstSeq", "lastSeq", "firstPrev", "lastHash")}
    if is_uint(own["firstSeq"]) and is_uint(own["lastSeq"]) and all(
        isinstance(own[k], str) for k in ("firstPrev", "lastHash")
    ):
        own["cause"] = verb
        own["archived"] = attributes.get("archived") is True
        out.append((True, own))
    for r in attributes.get("carried") or []:
        if (
            isinstance(r, dict)
            and is_uint(r.get("firstSeq"))
            and is_uint(r.get("lastSeq"))
            and isinstance(r.get("firstPrev"), str)
            and isinstance(r.get("lastHash"), str)
            and isinstance(r.get("cause"), str)
        ):
            out.append((False, dict(r, archived=r.get("archived") is True)))
    return out


def acknowledged(attributes, last_seq):
    acks = attributes.get("acknowledged")
    return (
        isinstance(acks, dict)
        and len(acks) > 0
        and all(is_uint(v) and v >= last_seq for v in acks.values())
    )


def unhex(text):
    if isinstance(text, str) and HEX64.match(text.encode()):
        return bytes.fromhex(text)
    return None


def parse_anchor(data):
    """(checkpoint, (seq, hash) or None) from a record line or an exported notice."""
    line = data[:-1] if data.endswith(b"\n") else data
    try:
        rec = parse_record(line)
    except Bad as e:
        if "no hash field" not in str(e):
            raise
        rec = None
    if rec is not None:
        if rec["checkpoint"] is None:
            raise Bad("does not hold a checkpoint")
        return rec["checkpoint"], (rec["seq"], rec["hash"])
    try:
        event = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise Bad(f"neither a checkpoint record nor an exported checkpoint: {e}")
    action = event.get("action") if isinstance(event, dict) else None
    if (
        not isinstance(action, dict)
        or event.get("source") != "journal"
        or action.get("verb") != "checkpoint"
        or not isinstance(action.get("attributes"), dict)
    ):
        raise Bad("not a checkpoint")
    a = action["attributes"]
    cp = {
        "headSeq": a.get("headSeq"),
        "headHash": a.get("headHash"),
        "time": event.get("time"),
        "seal": a.get("seal", False),
        "reason": a.get("reason", ""),
        "keyId": a.get("keyId"),
        "signature": a.get("signature"),
    }
    check_checkpoint_fields(cp)
    own = None
    if is_uint(a.get("seq")) and unhex(a.get("hash")) is not None:
        own = (a["seq"], unhex(a["hash"]))
    return cp, own


def list_segments(seg_dir):
    found = {}
    try:
        names = os.listdir(seg_dir)
    except OSError as e:
        raise Unreadable(f"{seg_dir}: {e}")
    for name in names:
        m = SEGMENT.match(name)
        if not m:
            continue
        first, compressed = int(m.group(1)), m.group(2) is not None
        # The plain file is authoritative when both exist.
        if first not in found or not compressed:
            found[first] = (os.path.join(seg_dir, name), compressed)
    return [(first,) + found[first] for first in sorted(found)]


class Verifier:
    def __init__(self, keys):
        self.keys = keys
        self.problems = []
        self.notes = []
        self.head = None  # (seq, hash)
        self.resync = False
        self.coverage = []
        self.gaps = []
        self.pending = None
        self.expected = []

    def problem(self, where, reason):
        self.problems.append(f"{where}: {reason}")

    def expect(self, source, data):
        try:
            cp, own = parse_anchor(data)
        except Bad as e:
            self.problem(source, str(e))
            return
        bad = signature_problem(self.keys, cp)
        if bad:
            self.problem(source, bad)
            return
        claims = []
        h = unhex(cp["headHash"])
        if h is None:
            self.problem(source, "head hash is not 64 hex digits")
            return
        claims.append((cp["headSeq"], h))
        if own is not None:
            claims.append(own)
        self.expected.append({"source": source, "claims": claims, "found": {}})

    def segment(self, name, first, data, last, compressed):
        seg_records, sealed = 0, False
        lines = data.split(b"\n")
        tail = lines.pop()  # after the final newline: b"" unless torn
        offset = 0
        for line in lines:
            where = f"{name}@{offset}"
            offset += len(line) + 1
            try:
                rec = parse_record(line)
            except Bad as e:
                self.problem(where, str(e))
                self.resync = True
                continue
            seq = rec["seq"]
            if seg_records == 0 and seq != first:
                self.problem(where, f"segment named for record {first} starts with {seq}")
            if sealed:
                self.problem(where, "a record after the sealing checkpoint")
            self.link(where, rec, seg_records == 0)
            for e in self.expected:
                for s, h in e["claims"]:
                    if s == seq:
                        e["found"][s] = e["found"].get(s, True) and h == rec["hash"]
            pending, self.pending = self.pending, None
            confirmed = False
            self.head = (seq, rec["hash"])
            seg_records += 1
            self.resync = False
            cp, event = rec["checkpoint"], rec["event"]
            if cp is not None:
                sealed = cp["seal"]
                if cp["headSeq"] != seq - 1 or unhex(cp["headHash"]) != rec["prev"]:
                    self.problem(where, "checkpoint does not cover the record before it")
                else:
                    bad = signature_problem(self.keys, cp)
                    if bad:
                        self.problem(where, bad)
                    elif (
                        pending is not None
                        and pending["seq"] == cp["headSeq"]
                        and pending["hash"] == unhex(cp["headHash"])
                    ):
                        self.coverage.extend(pending["coverage"])
                        confirmed = True
            elif event.get("source") == "journal":
                self.notice(where, seq, rec["hash"], event)
            if pending is not None and pending["coverage"] and not confirmed:
                self.notes.append(f"notice at record {pending['seq']} is not signed at once: ignored")
        if tail:
            if last and not compressed:
                self.notes.append(f"{name} ends with an incomplete record (torn write)")
            else:
                self.problem(f"{name}@{offset}", "an incomplete record inside the journal")
        elif not last and seg_records > 0 and not sealed:
            self.problem(name, "does not end with its sealing checkpoint")

    def link(self, where, rec, first_in_segment):
        if self.resync:
            return
        seq, prev = rec["seq"], rec["prev"]
        if self.head is None:
            if seq > 1:
                self.gaps.append((where, 1, seq - 1, GENESIS, prev))
            elif prev != GENESIS:
                self.problem(where, "the first record does not start at the genesis hash")
            return
        head_seq, head_hash = self.head
        if seq == head_seq + 1 and prev == head_hash:
            return
        if first_in_segment and seq > head_seq + 1:
            self.gaps.append((where, head_seq + 1, seq - 1, head_hash, prev))
        else:
            self.problem(where, f"record {seq} does not follow record {head_seq}")

    def notice(self, where, seq, rec_hash, event):
        action = event.get("action") if isinstance(event.get("action"), dict) else {}
        verb = action.get("verb")
        attributes = action.get("attributes")
        if not isinstance(attributes, dict):
            attributes = {}
        if verb == "tail-cut" and attributes.get("tampering") is True:
            self.problem(where, "records were cut from the end before a writer restarted")
        coverage = []
        for own, r in deletion_ranges(verb, attributes):
            if own and r["cause"] == "segment-deleted" and not acknowledged(attributes, r["lastSeq"]):
                continue
            first_prev, last_hash = unhex(r["firstPrev"]), unhex(r["lastHash"])
            if first_prev is not None and last_hash is not None:
                coverage.append(
                    (r["firstSeq"], r["lastSeq"], first_prev, last_hash, r["cause"], r["archived"])
                )
        self.pending = {"seq": seq, "hash": rec_hash, "coverage": coverage}

    def resolve(self, gap):
        _, start, end, before, after_prev = gap
        pos, h = start, before
        for _ in range(len(self.coverage) + 1):
            if pos > end:
                return h == after_prev
            step = next(
                (c for c in self.coverage if c[0] == pos and c[2] == h and c[1] >= c[0]),
                None,
            )
            if step is None:
                return False
            pos, h = step[1] + 1, step[3]
        return False

    def finish(self):
        resolved = []
        for gap in self.gaps:
            if self.resolve(gap):
                resolved.append((gap[1], gap[2]))
                self.notes.append(f"records {gap[1]}..{gap[2]} deleted (recorded)")
            else:
                self.problem(gap[0], f"records {gap[1]}..{gap[2]} are missing")
        head_seq = self.head[0] if self.head else 0
        for e in self.expected:
            for s, _ in e["claims"]:
                found = e["found"].get(s)
                if found is True:
                    continue
                if found is False:
                    self.problem(e["source"], f"record {s} differs from the signed one: rewritten")
                elif any(a <= s <= b for a, b in resolved):
                    continue
                elif s > head_seq:
                    self.problem(e["source"], f"journal ends at {head_seq}, signed head is {s}: records were cut from the end")
                else:
                    self.problem(e["source"], f"record {s} is missing: rewritten")
                break


def read_segment(path, compressed):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if compressed else data


def verify(directory, key_files, anchors):
    keys = {}
    if key_files:
        for path in key_files:
            kid, key = load_key(path)
            keys[kid] = key
    else:
        keys_dir = os.path.join(directory, "keys")
        if os.path.isdir(keys_dir):
            for name in sorted(os.listdir(keys_dir)):
                if name.endswith(".pub"):
                    kid, key = load_key(os.path.join(keys_dir, name))
                    keys[kid] = key
    v = Verifier(keys)
    for path in anchors:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Unreadable(f"{path}: {e}")
        v.expect(f"anchor {path}", data)
    try:
        with open(os.path.join(directory, "head.json"), "rb") as f:
            v.expect("head.json", f.read())
    except FileNotFoundError:
        v.notes.append("head.json is missing")
    except OSError as e:
        raise Unreadable(str(e))
    segments = list_segments(os.path.join(directory, "segments"))
    for i, (first, path, compressed) in enumerate(segments):
        try:
            data = read_segment(path, compressed)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            v.problem(os.path.basename(path), f"unreadable segment: {e}")
            continue
        v.segment(os.path.basename(path), first, data, i == len(segments) - 1, compressed)
    v.finish()
    return v


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--public-key", action="append", default=[])
    parser.add_argument("--anchor", action="append", default=[])
    args = parser.parse_args()
    try:
        v = verify(args.dir, args.public_key, args.anchor)
    except (Unreadable, OSError, ValueError) as e:
        print(f"UNREADABLE {e}")
        return 2
    for note in v.notes:
        print(f"note: {note}")
    if v.problems:
        print("TAMPERED")
        for p in v.problems:
            print(f"  {p}")
        return 1
    print("INTACT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
