"""The registry of public datasets: where each file comes from and what the paper says about it.

One frozen :class:`DatasetRecord` per dataset, keyed by a snake_case id. A record holds the
facts a user needs to obtain and use a dataset: its files (:class:`RemoteFile`: origin URL,
sha256, size), homepage, license, citation, and the paper's settings for it (frame rate,
behaviours, annotators, the (H, W) resize, flip augmentation, number of random splits).

Sources of the facts (Bohnslav et al., eLife 2021 = "the paper"):

* fps, resize, flips, video counts, annotators: the paper's Methods, "Datasets" and
  "Augmentations", and its Table 1 (inference resolution, read as H x W: it gives 224 x 448 for
  the horizontally concatenated Sturman-FST views and 128 x 192 for the fly's 192 x 128 frames).
* Sturman label files, the Sturman pose excerpts, the DeepLabCut open-field video and the rat
  files: ``../shared/data/README.md``; their sha256 and sizes were computed from the unchanged
  copies there (the rat pose CSVs there are gzip-compressed, so their origin sha256 is not known).

Anything not known here is ``None`` and the record's ``notes`` say so. The authors' own datasets
and the Sturman videos have no known direct file URL: their :class:`RemoteFile` has ``url=None``
and a placeholder name under which a mirror (``DEG_DATA_MIRROR``) may supply them; without a
mirror :func:`deg.data.download.fetch` refuses them with a message naming the homepage.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from deg.presets import HPARAMS

KINDS = ("video", "labels", "pose", "synthetic")
ROLES = ("videos", "labels", "pose", "archive")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    ``name`` is the file's basename at its origin; it is also its local name and its name in a
    mirror (``<mirror>/<dataset id>/<name>``). ``url=None`` means the direct URL is unknown
    (then ``name`` is a placeholder, see ``note``). ``extract`` unpacks a .zip/.tar.gz archive
    into a folder beside it. ``shared`` is the path of an identical (or, ending in ``.gz``,
    gzip-compressed) copy under ``deg.paths.shared_data_dir()``, used to build local mirrors.
    ``homepage`` overrides the record's homepage for this file (e.g. Sturman videos on Zenodo).
    """

    name: str
    url: str | None
    sha256: str | None = None
    size: int | None = None
    extract: bool = False
    note: str = ""
    role: str = "labels"
    shared: str | None = None
    homepage: str | None = None


@dataclass(frozen=True)
class DatasetRecord:
    """Everything the package knows about one public dataset (``None`` = unknown)."""

    id: str
    title: str
    kind: str                                   # one of KINDS
    paper_name: str | None                      # name in the paper's figures, e.g. "Sturman-OFT"
    files: tuple[RemoteFile, ...]
    homepage: str
    license: str
    citation: str
    fps: float | None
    behaviours: tuple[str, ...] | None          # "background" first
    annotators: tuple[str, ...] | None
    train_annotator: str | None
    n_videos: int | None
    resize: tuple[int, int] | None              # (H, W) frames are resized to in the paper
    flips: tuple[bool, bool] | None             # (horizontal, vertical) flip augmentation
    n_splits: int | None                        # random train/val/test splits in the paper
    notes: str = ""
    n_annotators: int | None = None             # when names are unknown but the count is not
    generator: str | None = None                # module that generates a synthetic dataset
    # Length of every recording in seconds, where the dataset fixes one (Sturman: OFT and EPM
    # 600 s, FST 360 s). Interval labels cover frames 0 .. round(recording_s * fps) - 1.
    recording_s: float | None = None

    def file(self, name: str) -> RemoteFile:
        for remote in self.files:
            if remote.name == name:
                return remote
        raise KeyError(f"dataset {self.id!r} has no file {name!r}; its files: "
                       f"{', '.join(f.name for f in self.files) or '(none)'}")

    def file_names(self, role: str | None = None) -> list[str]:
        """Names of the record's files, optionally only those of one role (see ROLES)."""
        return [f.name for f in self.files if role is None or f.role == role]

    @property
    def downloadable(self) -> bool:
        """True when every file has a known origin URL (no mirror needed)."""
        return bool(self.files) and all(f.url for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------
# Shared constants
# --------------------------------------------------------------------------------------
DEG_HOMEPAGE = "https://github.com/jbohnslav/deepethogram"
# The authors' datasets: the Dropbox folder linked from the DeepEthogram README. It is a folder
# page, not a file: per-dataset archive names are not published, so records hold no file URL.
DEG_DATA_ORIGIN = "https://www.dropbox.com/sh/3lilfob0sz21och/AABv8o8KhhRQhYCMNu0ilR8wa?dl=0"
DEG_CITATION = ("Bohnslav JP, Wimalasena NK, Clausing KJ, Dai YY, Yarmolinsky DA, Cruz T, Kashlan AD, "
                "Chiappe ME, Orefice LL, Woolf CJ, Harvey CD (2021). DeepEthogram, a machine learning "
                "pipeline for supervised behavior classification from raw pixels. eLife 10:e63377. "
                "doi:10.7554/eLife.63377")
DEG_LICENSE = "unknown: see homepage (the paper is CC BY 4.0; the data's license is not stated there)"

STURMAN_ZENODO = "https://doi.org/10.5281/zenodo.3608658"
STURMAN_REPO = "https://github.com/ETHZ-INS/DLCAnalyzer"
STURMAN_RAW = ("https://raw.githubusercontent.com/ETHZ-INS/DLCAnalyzer/"
               "cfdc34a85b6ce961bbddd8905a1a62b714dbc11a/")
STURMAN_CITATION = ("Sturman O, von Ziegler L, Schlappi C, Akyol F, Privitera M, Slominski D, Grimm C, "
                    "Thieren L, Zerbi V, Grewe B, Bohacek J (2020). Deep learning-based behavioral "
                    "analysis reaches human accuracy and is capable of outperforming commercial "
                    "solutions. Neuropsychopharmacology 45:1942-1952. doi:10.1038/s41386-020-0776-y")
STURMAN_LICENSE = "labels: GPL-3.0 (DLCAnalyzer repository); videos: see the Zenodo record"
STURMAN_FPS = 25.0  # ../shared/data/README.md: interval times in seconds at 25 fps
DLC2ACTION_RAW = ("https://raw.githubusercontent.com/amathislab/DLC2action/"
                  "7d705638aa8d887656c6ff8c52a3a5c419bdba2d/tests/data/")
DLC_RAW = ("https://raw.githubusercontent.com/DeepLabCut/DeepLabCut/"
           "2df0f46c8c8c56c8238b46b3d58384163bafb2f0/")
RAT_REPO = "https://github.com/Blossom0913/Mouse-Behavior-Classifier-Train"
RAT_RAW = ("https://raw.githubusercontent.com/Blossom0913/Mouse-Behavior-Classifier-Train/"
           "85038152b98ef413a6229a08d0c473d171d2f442/data/")

_UNKNOWN_URL = "URL unknown: see homepage"


def _placeholder(dataset_id: str, homepage: str, what: str, role: str = "archive") -> RemoteFile:
    """A file whose direct URL and name are unknown: a mirror may supply it under this name."""
    name = f"{dataset_id}.zip"
    return RemoteFile(
        name=name, url=None, extract=True, role=role, homepage=homepage,
        note=(f"{_UNKNOWN_URL} ({homepage}). {what} Its file names and format are not known here; "
              f"a mirror may supply it as <DEG_DATA_MIRROR>/{dataset_id}/{name} (a .zip or .tar.gz "
              f"archive, detected by content), or `make data DATASET={dataset_id} FROM=<archive or "
              "folder>` imports a copy obtained by hand."),
    )


def _deg_record(id: str, paper_name: str, *, fps: float | None, n_videos: int, resize, flips,
                n_annotators: int, notes: str, behaviours: tuple[str, ...] | None = None) -> DatasetRecord:
    return DatasetRecord(
        id=id, title=f"{paper_name} (Bohnslav et al. 2021)", kind="video", paper_name=paper_name,
        files=(_placeholder(id, DEG_DATA_ORIGIN, "Videos and per-frame labels of the DeepEthogram "
                            "paper: the Dropbox folder linked from the project README "
                            f"({DEG_HOMEPAGE}). The archive holds one DeepEthogram project "
                            "(project_config.yaml and DATA/<video>/{<video>.mp4, "
                            "<video>_labels.csv}), as a folder or zipped/tarred."),),
        homepage=DEG_HOMEPAGE, license=DEG_LICENSE, citation=DEG_CITATION, fps=fps,
        behaviours=behaviours, annotators=None, train_annotator=None, n_videos=n_videos,
        resize=resize, flips=flips, n_splits=5, n_annotators=n_annotators,
        notes=("behaviours: unknown here (paper Figure 2 shows them; the project files name them); "
               "annotator names: unknown here. " + notes),
    )


# --------------------------------------------------------------------------------------
# The authors' datasets (paper Methods, "Datasets"; resize from Table 1)
# --------------------------------------------------------------------------------------
_RECORDS: list[DatasetRecord] = [
    _deg_record("mouse_ventral1", "Mouse-Ventral1", fps=25.0, n_videos=28, resize=(256, 256),
                flips=(True, True), n_annotators=3,
                notes="28 ~10 min videos, 419,846 frames; 250x250 recordings resized to 256x256; "
                      "labelled three times. Flips: vertical per the paper ('also flipped "
                      "vertically'), horizontal read from 'flipped horizontally and vertically "
                      "(depending on the dataset)'."),
    _deg_record("mouse_ventral2", "Mouse-Ventral2", fps=30.0, n_videos=16, resize=(256, 256),
                flips=(True, True), n_annotators=2,
                notes="16 ~30 min videos, 863,232 frames; scratching and licking were scored; "
                      "labelled twice. Flips: as Mouse-Ventral1."),
    _deg_record("mouse_openfield", "Mouse-Openfield", fps=None, n_videos=20, resize=(256, 256),
                flips=None, n_annotators=2,
                notes="fps: 30 or 60 depending on the video; 20 ~10 min videos, 537,534 frames; "
                      "flips: not stated in the paper; labelled twice."),
    _deg_record("mouse_homecage", "Mouse-Homecage", fps=60.0, n_videos=12, resize=(352, 224),
                flips=None, n_annotators=2,
                notes="12 ~10 min videos, 438,544 frames; resize from Table 1 (352 x 224, read as "
                      "H x W); flips: not stated in the paper; labelled by two experimenters."),
    _deg_record("mouse_social", "Mouse-Social", fps=60.0, n_videos=12, resize=(224, 224),
                flips=None, n_annotators=2,
                notes="12 ~10 min videos, 438,544 frames (the paper gives the same count as "
                      "Mouse-Homecage); resize from Table 1; flips: not stated in the paper."),
    _deg_record("fly", "Fly", fps=100.0, n_videos=19, resize=(128, 192), flips=None, n_annotators=1,
                notes="19 ~30 min side-view videos, 3,419,943 frames; recorded at 200 Hz, "
                      "down-sampled to 100 Hz; 168x100 grayscale frames up-sampled to 192x128 "
                      "(W x H) and converted to RGB; one labeller; flips: not stated in the paper; "
                      "behaviour: a coordinated walking pattern (Fujiwara et al. 2017)."),
]

# --------------------------------------------------------------------------------------
# Sturman et al. 2020 (videos on Zenodo; labels on GitHub at a pinned commit)
# --------------------------------------------------------------------------------------
_STURMAN_POSE = (
    ("12_01_A_190507144429DeepCut_resnet50_Blockcourse1May9shuffle1_1030000.csv",
     "766aca3d9cbf75447c76a6107f80eda80ec334250aea03c229ac7d470e26c55e", 1806289, "OFT_44"),
    ("8_01_A_190507134142DeepCut_resnet50_Blockcourse1May9shuffle1_1030000.csv",
     "2bb220a7822bac78259f1b01d6b4309c3b251ed2ce61972b9ca0c7f7dd341653", 1780421, "OFT_38"),
)


def _sturman_videos(dataset_id: str) -> RemoteFile:
    return _placeholder(dataset_id, STURMAN_ZENODO,
                        "The Sturman videos are on Zenodo, record 3608658.", role="videos")


_RECORDS += [
    DatasetRecord(
        id="sturman_epm", title="Sturman et al. 2020, elevated plus maze", kind="video",
        paper_name="Sturman-EPM",
        files=(
            RemoteFile("AllEPMLables.csv", STURMAN_RAW + "data/EPM/Labels/AllEPMLables.csv",
                       "46906df810429d2476fc2b3ac0aa079e98554054fc4851a55f2cd1c8939c3d2d", 149802,
                       note="';'-separated intervals in seconds; annotator in the Experimenter column",
                       role="labels", shared="sturman/EPM/AllEPMLables.csv"),
            _sturman_videos("sturman_epm"),
        ),
        homepage=STURMAN_REPO, license=STURMAN_LICENSE, citation=STURMAN_CITATION, fps=STURMAN_FPS,
        behaviours=("background", "Head Dip", "Grooming", "Protected Stretch", "Rearing",
                    "Unprotected Stretch"),
        annotators=("Jin", "Oliver", "Sian"), train_annotator=HPARAMS["train_annotator_sturman"],
        n_videos=5, resize=(256, 256), flips=(True, True), n_splits=3, recording_s=600.0,
        notes="Only three of the five videos contain every behaviour, hence three splits (paper). "
              "Videos: Zenodo 3608658, file names unknown here.",
    ),
    DatasetRecord(
        id="sturman_fst", title="Sturman et al. 2020, forced swim test", kind="video",
        paper_name="Sturman-FST",
        files=(
            RemoteFile("AllFSTLables.csv", STURMAN_RAW + "data/FST/Lables/AllFSTLables.csv",
                       "94aeb39d8c6973c04e229200f604b47d1d38b8dfa94236be19448f749e8625fd", 54757,
                       note="';'-separated intervals in seconds (note the 'Lables' folder); 54,757 "
                            "bytes at the pinned commit; no copy in shared data, so the sha256 is not "
                            "re-checked by the tests",
                       role="labels"),
            _sturman_videos("sturman_fst"),
        ),
        homepage=STURMAN_REPO, license=STURMAN_LICENSE, citation=STURMAN_CITATION, fps=STURMAN_FPS,
        behaviours=("background", "Floating"),
        annotators=("Jin", "Oliver", "Schlappi", "Rebecca"),
        train_annotator=HPARAMS["train_annotator_sturman"],
        n_videos=10, resize=(224, 448), flips=(False, False), n_splits=5, recording_s=360.0,
        notes="10 recordings, each a top and a side view, cropped to 224x224 each and concatenated "
              "horizontally (448 wide x 224 high); no flips (paper). 6-minute recordings (360 s = 9,000 "
              "frames at 25 fps). Behaviours and annotators are "
              "UNVERIFIED: read from another commit of the label file (types 'Floating' plus "
              "Start/End markers; Experimenter column Jin, Oliver, Schlappi, Rebecca).",
    ),
    DatasetRecord(
        id="sturman_oft", title="Sturman et al. 2020, open field test", kind="video",
        paper_name="Sturman-OFT",
        files=(
            RemoteFile("AllLabDataOFT_final.csv", STURMAN_RAW + "data/OFT/Labels/AllLabDataOFT_final.csv",
                       "2a690c586f00af4574be5555e63ff66698a3149ef8c70e050876f138e7fd5fd3", 763726,
                       note="';'-separated intervals in seconds; annotator in the file column "
                            "(OFT_xx_FA/Jin/Jin2/OS); Jin2 files are the same annotator",
                       role="labels", shared="sturman/OFT/AllLabDataOFT_final.csv"),
            *(RemoteFile(name, DLC2ACTION_RAW + name, sha, size, role="pose",
                         note=f"DeepLabCut tracks of {video}, first 2,000 frames only (DLC2action "
                              "test data, AGPL-3.0)",
                         shared=f"sturman_pose_oft/{name}")
              for name, sha, size, video in _STURMAN_POSE),
            _sturman_videos("sturman_oft"),
        ),
        homepage=STURMAN_REPO, license=STURMAN_LICENSE + "; pose excerpts: AGPL-3.0 (DLC2action)",
        citation=STURMAN_CITATION, fps=STURMAN_FPS,
        behaviours=("background", "Supported", "Unsupported", "Grooming"),
        annotators=("FA", "Jin", "OS"), train_annotator=HPARAMS["train_annotator_sturman"],
        n_videos=20, resize=(256, 256), flips=(True, True), n_splits=5, recording_s=600.0,
        notes="Unsupported = rearing. The label file also has a rare 'Jumping' type (16 intervals "
              "over all annotators; for Jin in only 2 of the 20 videos), which cannot be in every "
              "subset of a train/validation/test split, so it is not listed here: drop it when "
              "preparing the dataset. A fixed 0-600 s window (15,000 frames) per video reproduces "
              "the published frame counts. Videos: Zenodo 3608658, file names unknown here.",
    ),
]

# --------------------------------------------------------------------------------------
# Other public data used by tests, benchmarks and keypoint baselines (not in the paper)
# --------------------------------------------------------------------------------------
# sha256 and size of the unchanged annotation files 1..40 (copies in ../shared/data/rat_social).
_RAT_ANNOT: dict[int, tuple[str, int]] = {
    1: ("d070c68a099bd933be6e254b2f4f7034f2f3bc07a61be31db5809ac44ac76396", 4604),
    2: ("d31c457784a145395c2a1b349e19d2b7810553a7bd9d60720adfb5eeb4f475f4", 2535),
    3: ("53c8197bf28e0310ed4f04ea08459a7b00d48e03d0c720f3b9c38d0e1a6a88b4", 1635),
    4: ("4d8b301d274264ec519234da05467928aff7b344f6defd6f133fd888de8b1cd2", 1202),
    5: ("b6d8f7a302eecf97b29a996c929043c1a51135fa5fb68830a9eadfb58e8f59ea", 3258),
    6: ("50fc15aa5d403ecca2a216bd380f0ca8e62ac3700f6bbae4f3f21cfb9df08aaa", 1942),
    7: ("a309953556ca5280032d106fd356abb9349cbc3b4781aa9a95b20750ca340bd1", 1571),
    8: ("0ab9e22ae02ea6df459afa37f37cb952935015cad807b76d6a67bf98ab341a3d", 4834),
    9: ("a58bfaa0bbdd73391b4a0148add7b71fe2b2f37422a0087e7cba58465cda3144", 986),
    10: ("b2255bf01338ca1da4eb0b4f16e590b9eb7e5f7779e19d3165b323189fa3106f", 1367),
    11: ("376d34fe34c7a98e74bb2ae56f0359f68e361d4dcecec6d8afcc9262ae9baeda", 1335),
    12: ("baa84d7a2fa1ca50210a60104b24bf735d4bc99b0c835d42c18afd89ebe22f90", 3405),
    13: ("74bf95367cbf332ccc0ca9f1575aecca643c948751a2051ea8f0b1eb92d1af2a", 1614),
    14: ("4e9b747967e9eefa4679f237562c7aa1e05ad9ca5dea33f4880d9bf560fab24c", 2171),
    15: ("1519b6d302ffccfb3806f3060db2c68bd78f84adf3395452649f36f87d01a404", 985),
    16: ("6e3be1557f8dbae92a22a981e9709fb2b12407a801d7b4787130aded03116e39", 1567),
    17: ("bbc62bc8cae1fb57a25fae71bbf472314788d650dba670e50e68de0781ec3558", 1509),
    18: ("9fa7eef664896a0407d03f0cf30f21024d1ae4b8966ac7d54eda1d038d6e1df3", 1226),
    19: ("018e828f9b5449982e09aff817be8e34ddc7b7167a1d86ebd4ee64f7f91dd1b6", 1946),
    20: ("71990ccd2a5f1c5559e1cec92d4cc8c6f800f2311f38803f4c24a8ca30ffe848", 3067),
    21: ("550ee6f3e588c0f80dcf88f2b3ba8dc67550a0dcf904cd99721869346bf6e645", 1114),
    22: ("ad144c35e6ea3b7c71fc04cb9bf17b9c3c9d48d345febdc1e52fc52f759c95aa", 2107),
    23: ("6a9d355787d8ca0f24cd89277586f905f7baf9e3966454a36421fc12f4bb275e", 1779),
    24: ("4e99c4abc0bddc69489be8863dabf1f21fce57f7e60ab3a7081c7395d0a88737", 3480),
    25: ("e1f19a97fd66f37c2a6109a92dda85fb7c19d25b7680635a42f0271e676dd38a", 2535),
    26: ("6df9b2158879612d06a6991c194ceef85ff723bc0cd1351d1eec83621575f6c9", 1052),
    27: ("321f861e3e4bd0434de6890d6d7a110645dc2b86f1701549616c5d1c37728d31", 3396),
    28: ("b30b0509e22684e3ecda9671b7a6453a2751117506bee40a84e4310c3d4708d1", 2291),
    29: ("f4070ab6e52afbd358e52b7bfe41de8cca3410e023ffbec18c142fecd2f37a53", 948),
    30: ("897142d7b8cb408ab64f6aaed67eba7c0f37c64fe902baee10df1bee7e8e1e3c", 1148),
    31: ("8b9d43be85930ae792209ad16b48e90961278bb03723196ec44c3fc39f6eaf68", 1801),
    32: ("e7cbed557e7f8de42dac5869dd7ac728d1c6beee79fd9d425c86fb282086d6a7", 964),
    33: ("d6e74c23b4590c8e16c788b69efcb0317ef23c138bfcf6d5caad4b83db0e27f8", 1542),
    34: ("c37346644ee8b596f7fd9a4fcbebc52ead648ffff8ad40f4d17c4bb125794fc1", 1955),
    35: ("e03403d80fc1ac4d6fb5a87c301e22a82248ba703eb7ff0d241d744aff1dd49c", 4617),
    36: ("c501a38109ca7edd847a2c8159ca97da3bd521c7df60aed19f4dfe9db26568c8", 2468),
    37: ("cae038a8f286c275e1e3249de38db7090d0c6b18213d7b8d8cc1236bd26c180f", 1634),
    38: ("4a66d25d363b240587729be0cfdb9a65e6e55b1f1b03d21106d1b46e2a926ff0", 2500),
    39: ("2a4ce1098d05211f205f7d965dbb44de7c6c4001a6ffda94b0770a8850e5c6dd", 2985),
    40: ("a72f281788bdae797d66e5f75dc48b749c76d463df9741ea720e57bfc098e728", 4299),
}
_RAT_DLC_SUFFIX = "DLC_dlcrnetms5_DLC_ratJan24shuffle1_5000_el_filtered.csv"
# sha256 and size of the pose CSVs 1..40: computed from the gunzipped copies in
# ../shared/data/rat_social/dlc_csv/*.csv.gz, which are the origin files compressed unchanged.
_RAT_DLC: dict[int, tuple[str, int]] = {
    1: ("82f78b08f54610c8a3872627d207690e306e39e12e7fb920ed10fd2b7855bacb", 3409163),
    2: ("55a54e37a57f21e475200621e65040762c7a405d5d2cb589cd3e64939f4256b9", 3590941),
    3: ("cc594f665fc72e8739c6363a0d0ec03ab62a940f565731cbb4c081b8240fad94", 3922820),
    4: ("83929d4108092ff55318ca8afef0ff1c67de6a7fc509ce11d047a9f655c7ec04", 3619122),
    5: ("5d4ef5967b2053a19fb5dd0c934657ff63c82c4d299f7a72a26873268f4e11ca", 2903556),
    6: ("6389aa3b8a4da3a792ad8c9b8965afce7474050cf685fb2417a8c0dae4ef8f9a", 3414741),
    7: ("7bc0791fb5151a7e612018c77fd6323e213f9cbd25c9675404d9f26b56d46805", 3684465),
    8: ("9382c2576fc4a575a8cd45262a266c1b86b597846acdce21a411c5a12dbb00f1", 3792074),
    9: ("cd8487747e3daac17d358674ac1ed4676216880136e2f62d8a2699e1a04c097e", 3536009),
    10: ("3dee5d5403caef281dcf7aa17ac493e68d13d836f8a65bccf985f23652534752", 3631303),
    11: ("515f79b64d4285114995db4543444c4b1476e95a1c218a5441edb1516bea9b35", 3735909),
    12: ("1f6dae5c6e1605491e6a1cf0780e6bc5e4ec47893ec7bf438c121d12b1b06f48", 3330815),
    13: ("80777f0fc8ceba3ec09d2b5fa27c87df87efe1182a21e55517706975c338f099", 3231350),
    14: ("736320b06681e2bcd88257c1fc18dae3353a669341fe4a5a393b5e5da62d10e6", 3524913),
    15: ("62c88b1c73e1e66b7e03b73ac72f60edb6a60980a08bd7a865c8b8a75e887808", 3566938),
    16: ("18968431779157b453d9a1801e84e6c02f58abb697b29be9482a01a547be8f3b", 3634170),
    17: ("521924fa9800518e710ac4cd3d81dd460771ef39ada6913c1aeb91337410d8ec", 3758860),
    18: ("faa01e79e61d4a259b11a8a2cbce5a0b37012571a4654083507af19d8dba97a5", 3081960),
    19: ("bde8466331382f27b54d65fadc0cd11752d238791a2d425567a2163f3d8d04ee", 3197106),
    20: ("79d3e9e2da33444d846d98c938acac9c81c943e97cb31c5cdc69f2d50d2d1923", 3321750),
    21: ("02048758a77b7acc4e97c2efe55ff2cacba9642264c9401ae4d5fe33a247e6a3", 3516420),
    22: ("6c25374f3414fd3f4ade18301916dccfa7b724532491f51df3c8e8d2bff9ffc4", 3793486),
    23: ("baebff7ea77dfa58f19ff54eb5ea8c159db5c8706724a99a7525b4deaf763782", 3432924),
    24: ("752e317ccd5643858e6191bb98bdc9193dbe4f071db0dbf923313cfbf48d3652", 2811900),
    25: ("a919776997c1abe8ad698f86abf52d5f191bdf5998b1c961459fe6c9d533a174", 3392554),
    26: ("d4a8a8e722c79c547ae44003d0e7b8788029d0e6608b9bcc7ba029a6fb4afa7d", 3568895),
    27: ("8d309e0b010d46380a55be34557d990aae009ae003d60a000c03c10a722cce25", 3487740),
    28: ("f7196414567eaf557b55bad6fa9f20b55488f3c3f556937f6a7faa2baebfb674", 3378093),
    29: ("4ba5dd6f685e3d04c9c97a11c56fecc4da0f6e4fe8361900b20d9cc8eb8ed554", 3381212),
    30: ("51eba825c3d02a8bc3e030f10d0d8243da1d708903ebfa52ce7905191e2cad5e", 3345202),
    31: ("9b5748dd2662a626bb1dedd44c9ef2031908f6513fce9c65d8d6e85bc17f4977", 3412367),
    32: ("849dea891b5eced1c17024374e6d88dd4f9d253f0b9124668d1f754366c4e15c", 3070342),
    33: ("add9528c115a3ae8a9f4b742c5a5e804b4793ea0769e8b43e1baa030fb30cfbd", 3780114),
    34: ("cb11f19550ffd92a8c8fa4c9e4648d630194810b0edd2b879010be4d8b250f1e", 3447564),
    35: ("4c62716e251557173d10ad7a14e82788a162335e33d0d53be08903609502a2e9", 3665600),
    36: ("60b7eeb05f80d3d3c0f8f8baa3908fa3dd5fded4ee2dd169452e093a452bfd5b", 3703151),
    37: ("e8d77bb9e67a7319895252ab046a0127c6fff769f5352ace5d4ba8826d12f5fb", 4015454),
    38: ("165b84caf9c7ec926ff11b0f841d27f38d1c222f0225d1d08dffcfdfa2c22898", 3523098),
    39: ("865f4cb4ce85da62ad54510f76ca46f0ba1249c6f88cf8cd6580bd61376e84da", 3432552),
    40: ("65928282a134b820dce984a420769965a8d2e2198a7304c5a02a419f8d4edb6f", 3355151),
}


def _rat_files() -> tuple[RemoteFile, ...]:
    files: list[RemoteFile] = []
    for i, (sha, size) in _RAT_ANNOT.items():
        name = f"{i}_annot.txt"
        files.append(RemoteFile(name, RAT_RAW + "annotations/" + name, sha, size, role="labels",
                                note="Caltech Behavior Annotator file; S1/S2 label streams",
                                shared=f"rat_social/annotations/{name}"))
    for i, (sha, size) in _RAT_DLC.items():
        name = f"{i}{_RAT_DLC_SUFFIX}"
        files.append(RemoteFile(name, RAT_RAW + "dlc_csv/" + name, sha, size, role="pose",
                                note="DeepLabCut multi-animal CSV; sha256 and size of the uncompressed "
                                     "file (the shared copy is gzip-compressed)",
                                shared=f"rat_social/dlc_csv/{name}.gz"))
    return tuple(files)


_RECORDS += [
    DatasetRecord(
        id="rat_social", title="Two rats: DeepLabCut multi-animal tracks and behaviour labels",
        kind="pose", paper_name=None, files=_rat_files(), homepage=RAT_REPO,
        license="MIT (stated in the repository README)",
        citation="Blossom0913, Mouse-Behavior-Classifier-Train (GitHub); dataset DOI "
                 "10.6084/m9.figshare.30393298",
        fps=None,
        behaviours=("background", "aggression", "freezing", "lateralthreat", "keepdown", "chase",
                    "uprightposture", "social", "bite", "nonsocial", "clinch"),
        annotators=("original",), train_annotator="original", n_videos=40, resize=None, flips=None,
        n_splits=5,
        notes="Pose only (no videos here). Videos 1-40 of the 58 in the figshare dataset. 'base' "
              "= background. S1 (base/social/nonsocial/aggression) and S2 (base plus rarer acts) "
              "are independent label streams; frames 1-indexed, inclusive. One annotator (name "
              "not given; called 'original' here). fps: unknown. n_splits: this package's "
              "default, not a paper setting.",
    ),
    DatasetRecord(
        id="dlc_openfield", title="DeepLabCut example: mouse in an open field (m3v1)", kind="video",
        paper_name=None,
        files=(RemoteFile("m3v1mp4.mp4",
                          DLC_RAW + "examples/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4",
                          "e2394b4221821cdb7206910a6efcec9db338cb497d1f880bd5a0ef2fd087ce59", 2216380,
                          role="videos", note="640x480, 30 fps, 2,330 frames; no behaviour labels",
                          shared="videos/dlc_openfield_m3v1.mp4"),),
        homepage="https://github.com/DeepLabCut/DeepLabCut", license="LGPL-3.0",
        citation="Mathis A et al. (2018). DeepLabCut: markerless pose estimation of user-defined "
                 "body parts with deep learning. Nature Neuroscience 21:1281-1289.",
        fps=30.0, behaviours=None, annotators=(), train_annotator=None, n_videos=1, resize=None,
        flips=None, n_splits=None,
        notes="A real top-down video for video-reading tests and flow-generator benchmarks; "
              "unlabelled, so no splits.",
    ),
]

# --------------------------------------------------------------------------------------
# Synthetic datasets (generated locally; the generator module defines their behaviours)
# --------------------------------------------------------------------------------------
_SYNTHETIC = {
    "synthetic_tiny": "smallest synthetic set, for tests",
    "synthetic_openfield": "synthetic open field, for the demo profile",
    "synthetic_distractor": "synthetic open field with distracting motion, for the demo profile",
}
_RECORDS += [
    DatasetRecord(
        id=sid, title=f"Synthetic: {desc}", kind="synthetic", paper_name=None, files=(),
        homepage="", license="MIT (generated by this package)", citation="", fps=None,
        behaviours=None, annotators=None, train_annotator=None, n_videos=None, resize=None,
        flips=None, n_splits=None, generator="deg.data.synthetic",
        notes=f"Generated by deg.data.synthetic (VARIANTS[{sid!r}]), which defines fps, behaviours, "
              "annotators and sizes; nothing to download.",
    )
    for sid, desc in _SYNTHETIC.items()
]

REGISTRY: dict[str, DatasetRecord] = {r.id: r for r in _RECORDS}
assert len(REGISTRY) == len(_RECORDS), "duplicate dataset ids in the registry"


def get(dataset_id: str) -> DatasetRecord:
    """The record of ``dataset_id``; KeyError listing the known ids otherwise."""
    try:
        return REGISTRY[dataset_id]
    except KeyError:
        raise KeyError(f"unknown dataset {dataset_id!r}; known: {', '.join(REGISTRY)}") from None


def all_ids() -> list[str]:
    return list(REGISTRY)


def records() -> list[DatasetRecord]:
    return list(REGISTRY.values())


# ======================================================================================
# Pose datasets with human labels (deg.data.prepare_pose); appended after the records above.
# sha256 and sizes computed from the copies in ../shared/data (rat pose CSVs: of the gunzipped
# file, which equals the origin's bytes -- checked against the origin repository at the pinned
# commit). Facts from ../shared/data/README.md unless a note says otherwise.
# ======================================================================================
BEHAVIORDEPOT_REPO = "https://github.com/DeNardoLab/BehaviorDEPOT"
BEHAVIORDEPOT_RAW = ("https://raw.githubusercontent.com/DeNardoLab/BehaviorDEPOT/"
                     "c782b132daef550b8e19d83f04ff4ea0e6b3dc72/demo/")
ETHOME_REPO = "https://github.com/benlansdell/ethome"
ETHOME_RAW = ("https://raw.githubusercontent.com/benlansdell/ethome/"
              "e3f7d42786805e9b6f44b1649d061bf83535ca2d/tests/data/")

REGISTRY["rat_social"] = replace(
    REGISTRY["rat_social"], fps=30.0,   # pose checksums: _RAT_DLC in the record above
    notes=REGISTRY["rat_social"].notes.replace(
        "fps: unknown.", "fps: 30, the value the source repository's feature code assumes "
        "(src/data_loader.py, DLCFeatureExtractor(fps=30)); the recordings' rate is not stated.")
    + " Prepared by deg.data.prepare_pose: the S1 and S2 streams are merged into one multi-label "
      "matrix per video (deg.data.convert.combine_streams); annotations past the pose file's end "
      "(7 videos, 3-59 frames) are cut.")

_POSE_RECORDS = [
    DatasetRecord(
        id="behaviordepot_freezing", title="BehaviorDEPOT demo: mouse fear conditioning, freezing",
        kind="pose", paper_name=None,
        files=(
            RemoteFile("demo1_tracking.csv", BEHAVIORDEPOT_RAW + "demo1/demo1_tracking.csv",
                       "94c2a16b25140f905df100ef0a44cbf2562e77db14279726e0848edc23f859a7", 2698052,
                       role="pose", note="DeepLabCut CSV, 8 body parts, 6,000 frames",
                       shared="behaviordepot/demo1/demo1_tracking.csv"),
            RemoteFile("hB_demo1_manual_annotations.mat.mat",
                       BEHAVIORDEPOT_RAW + "demo1/hB_demo1_manual_annotations.mat.mat",
                       "31e8432cbb74bb088f342a60b3c380189ccc5f193f0e7100c9b0fd314c51b68e", 17736,
                       role="labels", note="hBehavior struct, MATLAB v7.3 (HDF5)",
                       shared="behaviordepot/demo1/hB_demo1_manual_annotations.mat.mat"),
            RemoteFile("demo2_tracking.csv", BEHAVIORDEPOT_RAW + "demo2/demo2_tracking.csv",
                       "4c3691651f167e2896de9c2ab57968c0b900303035f5de227c346426abaa2f50", 1174427,
                       role="pose", note="DeepLabCut CSV, LED + 8 body parts, 3,600 frames",
                       shared="behaviordepot/demo2/demo2_tracking.csv"),
            RemoteFile("hB_demo2_manual_annotations.mat",
                       BEHAVIORDEPOT_RAW + "demo2/hB_demo2_manual_annotations.mat",
                       "15f0c2736b6d01a31ee3c9afbf3473da3c5b10155dfa54d2071f86be1db7d8a8", 564,
                       role="labels", note="hBehavior struct, MATLAB v5",
                       shared="behaviordepot/demo2/hB_demo2_manual_annotations.mat"),
        ),
        homepage=BEHAVIORDEPOT_REPO, license="GPL-3.0",
        citation="Gabriel CJ, Zeidler Z, Jin B, et al. (2022). BehaviorDEPOT is a simple, flexible tool for "
                 "automated behavioral detection based on markerless pose tracking. eLife 11:e74314.",
        fps=None, behaviours=("background", "Freezing"), annotators=("human",), train_annotator="human",
        n_videos=2, resize=None, flips=None, n_splits=None,
        notes="Pose and labels only (no videos). fps differs per video: demo1 50 fps (1000x750 px, 32 "
              "px/cm), demo2 30 fps (640x480 px, 23 px/cm), from the demo's Params.mat files at the same "
              "commit. The two tracking files name their points differently (demo1 Nose/Left Ear/.../Tail, "
              "demo2 nose/l_ear/.../midtail plus an LED): both are mapped to one 8-point list, demo2's LED "
              "is dropped. One annotator (name not given; called 'human'). Two videos cannot be split "
              "60/20/20 by video, hence no n_splits.",
    ),
    DatasetRecord(
        id="ethome_social", title="ethome: two mice (adult + juvenile) in a social test, BORIS labels",
        kind="pose", paper_name=None,
        files=(
            RemoteFile("e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1_100000_el_filtered.csv",
                       ETHOME_RAW + "dlc/e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1"
                                    "_100000_el_filtered.csv",
                       "207cb350bc4dd20b7af807819b0c3abfad75d42007e12927bf64fbf0c6cd10bb", 2793506,
                       role="pose", note="multi-animal DeepLabCut CSV: adult and juvenile x 7 points, 5,700 "
                                         "frames (the copy under tests/data/; ethome/data/dlc/ holds a Git "
                                         "LFS pointer)",
                       shared="ethome/e3v813a-20210610T122332-122642DLC_dlcrnetms5_pilot_studySep24shuffle1_"
                              "100000_el_filtered.csv"),
            RemoteFile("e3v813a-20210610T122332-122642_reencode.csv",
                       ETHOME_RAW + "boris/e3v813a-20210610T122332-122642_reencode.csv",
                       "decd4c0c31be2264d735371d1a55963fb5e31df806ac3c37e97de099ec516489", 3043,
                       role="labels", note="BORIS export: behaviour 'interact' of subject 'adult', "
                                           "START/STOP in seconds, 30 fps, 190 s",
                       shared="ethome/boris/e3v813a-20210610T122332-122642_reencode.csv"),
        ),
        homepage=ETHOME_REPO, license="MIT",
        citation="Lansdell B, et al. ethome: tools for machine learning of animal behavior (GitHub, "
                 "benlansdell/ethome).",
        fps=30.0, behaviours=("background", "interact"), annotators=("boris",), train_annotator="boris",
        n_videos=1, resize=None, flips=None, n_splits=None,
        notes="One session, pose and labels only. The BORIS subject is 'adult'; the label column is "
              "'interact'. One annotator (name not given; called 'boris'). One video cannot be split by "
              "video, hence no n_splits. The origin repository holds four more sessions not mirrored here.",
    ),
    DatasetRecord(
        id="sturman_oft_pose", title="Sturman et al. 2020 open field: the two DeepLabCut excerpts with labels",
        kind="pose", paper_name=None,
        files=(REGISTRY["sturman_oft"].files[0],
               *(replace(f, note=f.note + "; aligned with the OFT labels frame by frame from frame 0")
                 for f in REGISTRY["sturman_oft"].files if f.role == "pose")),
        homepage=STURMAN_REPO, license=REGISTRY["sturman_oft"].license, citation=STURMAN_CITATION,
        fps=STURMAN_FPS, behaviours=("background", "Supported", "Unsupported"),
        annotators=REGISTRY["sturman_oft"].annotators, train_annotator=REGISTRY["sturman_oft"].train_annotator,
        n_videos=2, resize=None, flips=None, n_splits=None,
        notes="OFT_44 and OFT_38 only: the first 1,998 frames (80 s at 25 fps) that the DLC2action excerpts "
              "track, with the three annotators' labels of the same frames (the OFT label file read as for "
              "sturman_oft, then cut to the pose length). 18 points: 13 on the mouse, the arena's corners "
              "tl/tr/bl/br (from which its size in pixels is measured) and centre. Two videos: no split by video. "
              "Grooming is left out: in these 2 x 1,998 frames Jin and FA label none and OS 3 frames, too few "
              "to train or score (those frames count as background).",
    ),
]
for _record in _POSE_RECORDS:
    assert _record.id not in REGISTRY, f"duplicate dataset id {_record.id}"
    REGISTRY[_record.id] = _record
# --------------------------------------------------------------------------------------
# The paper's pretrained weights (not a dataset: the models' starting point; kind "weights")
# --------------------------------------------------------------------------------------
KINDS += ("weights",)
DEG_PRETRAINED_DRIVE = "https://drive.google.com/file/d/1ntIZVbOG1UAiFVlsAAuKEBEVCVevyets/view?usp=sharing"
PRETRAINED_RECORD = DatasetRecord(
    id="deg_pretrained", title="DeepEthogram models pretrained on Kinetics700 (Bohnslav et al. 2021)",
    kind="weights", paper_name=None,
    files=(_placeholder("deg_pretrained", DEG_PRETRAINED_DRIVE,
                        "The six pretrained models (the flow generators TinyMotionNet, MotionNet and "
                        "TinyMotionNet3D, and the DEG_f/m/s feature extractors) are one zip on Google "
                        "Drive, linked from the DeepEthogram README ('Pretrained models'); Google Drive "
                        "asks a browser to confirm large downloads, so fetch it by hand."),),
    homepage=DEG_HOMEPAGE, license="see homepage: DeepEthogram is free for academic use (its license.txt)",
    citation=DEG_CITATION, fps=None, behaviours=None, annotators=None, train_annotator=None, n_videos=None,
    resize=None, flips=None, n_splits=None,
    notes="Manual route: download the zip from the Google Drive link, unpack it, and copy each preset's "
          "two checkpoints to data/pretrained/<DEG_f|DEG_m|DEG_s>/flow_generator.pt and "
          "feature_extractor.pt (DEG_f: TinyMotionNet + ResNet18, DEG_m: MotionNet + ResNet50, DEG_s: "
          "TinyMotionNet3D + 3D-ResNet34). deg.models.pretrained loads them (torch checkpoints with a "
          "'state_dict'; the feature extractor's holds spatial_classifier.*, flow_classifier.*, "
          "flow_generator.*). Without them every model starts from random weights.",
)
_RECORDS.append(PRETRAINED_RECORD)
REGISTRY[PRETRAINED_RECORD.id] = PRETRAINED_RECORD
