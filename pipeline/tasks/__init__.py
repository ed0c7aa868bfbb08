"""The ABAW tasks emi can learn, as data: one :class:`Task` entry each, read by every stage downstream of
the features (targets, loss, heads, metrics, evaluation, predict, submission) and by the Aff-Wild2
adapter (where its labels live).

=====  ======  ===========  ==============================================  ================================
task   level   kind         outputs                                         metric (``metrics.json``)
=====  ======  ===========  ==============================================  ================================
emi    clip    regression   Admiration ... Joy, in [0, 1]                   mean Pearson (``pearson.mean``)
va     frame   regression   valence, arousal in [-1, 1]                     mean CCC (``ccc.mean``)
expr   frame   multiclass   Neutral, Anger, ..., Other (one of 8)           macro F1 (``f1.macro``)
au     frame   multilabel   AU1, AU2, ..., AU26 (12 binary)                 mean F1 (``f1.mean``)
=====  ======  ===========  ==============================================  ================================

A frame-level task's labels are per annotated video frame, in one text file per *track* (Aff-Wild2,
``../shared/docs/affwild2.md``): line 1 the header (``header``), line i + 1 frame i; ``invalid``
marks a frame without a usable label (VA: ``-5`` in either column; EXPR: ``-1``; AU: ``-1`` in any
column). Everywhere in the pipeline such labels are ``(N, K)`` float32 arrays, K = ``len(outputs)``
except for expr (K = 1, the class index), with NaN rows for invalid frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.emotions import EMOTIONS

EXPRESSIONS: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
ACTION_UNITS: tuple[str, ...] = (
    "AU1",
    "AU2",
    "AU4",
    "AU6",
    "AU7",
    "AU10",
    "AU12",
    "AU15",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
)


@dataclass(frozen=True, kw_only=True)
class Task:
    """One ABAW task. For the frame-level ones, also where Aff-Wild2 keeps its labels and test lists."""

    name: str
    title: str
    level: str  # "clip" | "frame"
    kind: str  # "regression" | "multiclass" | "multilabel"
    outputs: tuple[str, ...]  # what the model predicts per clip / frame, in submission column order
    metric: str  # metrics.json section: "pearson" | "ccc" | "f1"
    headline: str  # the dotted metric the CI gate and the grids compare
    low: float = 0.0  # regression outputs are clipped to [low, high] in predictions and submissions
    high: float = 1.0
    # Aff-Wild2 layout: annotation folder names (current first, then older releases' names), the test
    # set list file, the tag of the sample submission file, the label file header and invalid marker.
    folders: tuple[str, ...] = ()
    test_list: str = ""
    sample_tag: str = ""
    header: tuple[str, ...] = ()
    invalid: float = float("nan")

    @property
    def is_frame(self) -> bool:
        return self.level == "frame"

    @property
    def label_width(self) -> int:
        """Columns of a label array: one class index for multiclass, one per output otherwise."""
        return 1 if self.kind == "multiclass" else len(self.outputs)


EMI = Task(
    name="emi",
    title="Emotional Mimicry Intensity",
    level="clip",
    kind="regression",
    outputs=EMOTIONS,
    metric="pearson",
    headline="pearson.mean",
)
VA = Task(
    name="va",
    title="Valence-Arousal Estimation",
    level="frame",
    kind="regression",
    outputs=("valence", "arousal"),
    metric="ccc",
    headline="ccc.mean",
    low=-1.0,
    high=1.0,
    folders=("VA_Estimation_Challenge",),
    test_list="Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    sample_tag="VA",
    header=("valence", "arousal"),
    invalid=-5.0,
)
EXPR = Task(
    name="expr",
    title="Expression Recognition",
    level="frame",
    kind="multiclass",
    outputs=EXPRESSIONS,
    metric="f1",
    headline="f1.macro",
    folders=("EXPR_Recognition_Challenge", "EXPR_Classification_Challenge"),
    test_list="Expression_Recognition_Challenge_test_set_release.txt",
    sample_tag="Expr",
    header=EXPRESSIONS,
    invalid=-1.0,
)
AU = Task(
    name="au",
    title="Action Unit Detection",
    level="frame",
    kind="multilabel",
    outputs=ACTION_UNITS,
    metric="f1",
    headline="f1.mean",
    folders=("AU_Detection_Challenge",),
    test_list="Action_Unit_Detection_Challenge_test_set_release.txt",
    sample_tag="AU",
    header=ACTION_UNITS,
    invalid=-1.0,
)
TASKS: dict[str, Task] = {t.name: t for t in (EMI, VA, EXPR, AU)}
FRAME_TASKS: tuple[Task, ...] = tuple(t for t in TASKS.values() if t.is_frame)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]
