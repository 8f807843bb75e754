"""The dataset registry: ids, paper facts, and checksums against the real shared copies."""
from __future__ import annotations

import csv
import gzip
import hashlib
import re

import pytest

from deg.data import registry
from deg.presets import HPARAMS

PAPER_IDS = {"mouse_ventral1": "Mouse-Ventral1", "mouse_ventral2": "Mouse-Ventral2",
             "mouse_openfield": "Mouse-Openfield", "mouse_homecage": "Mouse-Homecage",
             "mouse_social": "Mouse-Social", "sturman_epm": "Sturman-EPM", "sturman_fst": "Sturman-FST",
             "sturman_oft": "Sturman-OFT", "fly": "Fly"}
OTHER_IDS = {"rat_social", "dlc_openfield", "behaviordepot_freezing", "ethome_social", "sturman_oft_pose"}
SYNTHETIC_IDS = {"synthetic_tiny", "synthetic_openfield", "synthetic_distractor"}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ids_and_lookup():
    assert set(registry.all_ids()) == set(PAPER_IDS) | OTHER_IDS | SYNTHETIC_IDS
    assert [r.id for r in registry.records()] == registry.all_ids()
    assert registry.get("sturman_oft").paper_name == "Sturman-OFT"
    with pytest.raises(KeyError, match="unknown dataset 'nope'.*sturman_oft"):
        registry.get("nope")


@pytest.mark.parametrize("record", registry.records(), ids=lambda r: r.id)
def test_record_is_consistent(record):
    assert record.kind in registry.KINDS
    assert re.fullmatch(r"[a-z0-9_]+", record.id)
    if record.behaviours is not None:
        assert record.behaviours[0] == "background"
        assert len(set(record.behaviours)) == len(record.behaviours)
    if record.annotators and record.train_annotator is not None:
        assert record.train_annotator in record.annotators
    names = [f.name for f in record.files]
    assert len(names) == len(set(names)), "file names must be unique within a dataset"
    for remote in record.files:
        assert remote.role in registry.ROLES
        if remote.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256)
        if remote.url is None:
            assert "URL unknown: see homepage" in remote.note
            assert (remote.homepage or record.homepage) in remote.note
        else:
            assert remote.url.startswith("https://") and remote.url.rsplit("/", 1)[1] == remote.name
    if record.id in PAPER_IDS:
        assert record.paper_name == PAPER_IDS[record.id]
        assert record.n_splits == (3 if record.id == "sturman_epm" else 5)
        assert record.files and record.citation and record.homepage
    if record.id in SYNTHETIC_IDS:
        assert record.files == () and record.generator == "deg.data.synthetic"


def test_paper_facts():
    """Spot checks of values from the paper's Methods (fps, frames, flips)."""
    assert registry.get("mouse_ventral1").fps == 25 and registry.get("mouse_ventral1").n_videos == 28
    assert registry.get("mouse_ventral2").fps == 30 and registry.get("fly").fps == 100
    assert registry.get("mouse_openfield").fps is None          # 30 or 60 fps per video
    assert "30 or 60" in registry.get("mouse_openfield").notes
    assert registry.get("sturman_fst").flips == (False, False)
    assert registry.get("sturman_oft").flips == (True, True) == registry.get("sturman_epm").flips
    for sid in ("sturman_oft", "sturman_epm", "sturman_fst"):
        rec = registry.get(sid)
        assert rec.fps == 25 and rec.train_annotator == HPARAMS["train_annotator_sturman"] == "Jin"
    assert registry.get("sturman_oft").annotators == ("FA", "Jin", "OS")
    assert registry.get("sturman_epm").annotators == ("Jin", "Oliver", "Sian")


def test_resize_matches_paper_table1():
    """Each paper dataset's (H, W) equals the resolution row of the paper's Table 1."""
    from deg import paths

    paper = paths.shared_data_dir().parent / "papers" / "deepethogram_elife2021.txt"
    if not paper.is_file():
        pytest.skip(f"{paper} is absent")
    text = paper.read_text()
    table_names = {"Fly": "Flies"}
    for sid, name in PAPER_IDS.items():
        row = re.search(rf"^{re.escape(table_names.get(name, name))}(\d+) × (\d+)", text, re.MULTILINE)
        assert row, name
        # Table 1 gives 3-digit sides followed directly by the first timing column
        h, w = int(row.group(1)), int(row.group(2)[:3])
        assert registry.get(sid).resize == (h, w), sid


def test_sturman_label_urls_are_pinned():
    for sid, path in (("sturman_oft", "data/OFT/Labels/AllLabDataOFT_final.csv"),
                      ("sturman_epm", "data/EPM/Labels/AllEPMLables.csv"),
                      ("sturman_fst", "data/FST/Lables/AllFSTLables.csv")):
        labels = registry.get(sid).file_names("labels")
        assert len(labels) == 1
        url = registry.get(sid).file(labels[0]).url
        assert url == ("https://raw.githubusercontent.com/ETHZ-INS/DLCAnalyzer/"
                       "cfdc34a85b6ce961bbddd8905a1a62b714dbc11a/" + path)
    assert registry.get("sturman_oft").file("AllLabDataOFT_final.csv").sha256 == \
        "2a690c586f00af4574be5555e63ff66698a3149ef8c70e050876f138e7fd5fd3"
    with pytest.raises(KeyError, match="no file 'x.csv'"):
        registry.get("sturman_oft").file("x.csv")


def test_checksums_match_shared_copies(shared_data):
    """Every registry sha256/size with an unchanged shared copy matches that copy's bytes."""
    checked = 0
    for record in registry.records():
        for remote in record.files:
            if remote.shared is None or remote.shared.endswith(".gz"):
                continue
            path = shared_data / remote.shared
            assert path.is_file(), path
            assert remote.sha256 == _sha(path), path
            assert remote.size == path.stat().st_size, path
            checked += 1
    # OFT + EPM labels, 2 pose excerpts, the DLC video, 40 rat annotation files; BehaviorDEPOT 2 x
    # (tracks + labels), ethome tracks + BORIS labels, sturman_oft_pose (OFT labels + 2 excerpts)
    assert checked == 54
    sturman = shared_data / "sturman"
    assert _sha(sturman / "OFT" / "AllLabDataOFT_final.csv") == registry.get("sturman_oft").files[0].sha256
    assert _sha(sturman / "EPM" / "AllEPMLables.csv") == registry.get("sturman_epm").files[0].sha256


def test_rat_pose_checksums_are_of_the_gunzipped_copies(shared_data):
    rat = registry.get("rat_social")
    pose = [rat.file(n) for n in rat.file_names("pose")]
    assert len(pose) == 40 == len(rat.file_names("labels")) == rat.n_videos
    for remote in pose:
        assert "gzip" in remote.note
        assert remote.shared.endswith(".gz") and remote.shared.endswith(remote.name + ".gz")
    for remote in pose[:3]:
        raw = gzip.decompress((shared_data / remote.shared).read_bytes())
        assert raw.startswith(b"scorer,")
        assert hashlib.sha256(raw).hexdigest() == remote.sha256 and len(raw) == remote.size


def test_sturman_behaviours_and_annotators_match_label_files(shared_data):
    """Behaviour names and annotators recorded for OFT and EPM occur in the real label files."""
    markers = {"Start/End", "StartEnd", "Start_End", "_DEFAULT", "NA"}
    for sid, rel in (("sturman_oft", "sturman/OFT/AllLabDataOFT_final.csv"),
                     ("sturman_epm", "sturman/EPM/AllEPMLables.csv")):
        with open(shared_data / rel, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
        record = registry.get(sid)
        types = {r["type"] for r in rows} - markers
        # OFT's rare 'Jumping' (in too few videos to be split) is deliberately left out.
        assert types - set(record.behaviours[1:]) == ({"Jumping"} if sid == "sturman_oft" else set())
        assert set(record.behaviours[1:]) <= types
        if sid == "sturman_epm":
            assert {r["Experimenter"] for r in rows} == set(record.annotators)
        else:   # annotator = file suffix; Jin2 is the same annotator as Jin
            suffixes = {r["file"].rsplit(".", 1)[0].split("_")[-1] for r in rows}
            assert {s.rstrip("2") for s in suffixes} == set(record.annotators)


def test_rat_behaviours_match_annotation_config(shared_data):
    text = (shared_data / "rat_social" / "annotations" / "1_annot.txt").read_text()
    config = text.split("Configuration file:")[1].split("S1:")[0]
    names = [line.split()[0] for line in config.strip().splitlines() if line.strip()]
    assert names[0] == "base"
    assert tuple(names[1:]) == registry.get("rat_social").behaviours[1:]
