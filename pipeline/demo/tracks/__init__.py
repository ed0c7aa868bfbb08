"""The frame-level demo (stage ``make_demo`` for tasks va, expr, au): a miniature Aff-Wild2 release.

Modules: ``model`` (the generative model: segment configurations, track plans, the per-frame truth),
``labels`` (the annotators: noise, flips, invalid stretches), ``posterior`` (what each modality
shows and the exact posterior given it), ``ceiling`` (noise ceilings), ``layout`` (which videos and
tracks, where each trait of the real data goes), ``render`` (one video: faces and voices),
``release`` (the release's text files, also for tests), ``table`` (latents.parquet), ``generate``
(the whole release, written atomically).

Generative model
----------------
One person's track is a sequence of *expression segments* (3-6 s, or 5.2-7.2 s when the person
says a sentence in it). Each segment draws, independently, one of 1440 configurations:

==============  ======================================  =========================================
latent          values                                  shows in
==============  ======================================  =========================================
expression c    8 classes, prior .22 .08 .07 .07 .18     the face (render_face smile, brow, jaw;
                .14 .09 .15 (Neutral .. Other)          Anger = Disgust, Fear = Surprise there)
intensity s     0.4, 0.6, 0.8, 1.0                      the face (how far the expression goes)
mood_valence    5 levels in [-0.15, 0.15]               the words (wording level)
mood_arousal    9 levels in [-0.4, 0.4]                 the voice (espeak-ng speed, amplitude)
==============  ======================================  =========================================

and, apart from the latents, whether the person speaks in it (70 %), whether the face leaves the
frame for it (12 %, never the first segment), which sentence of its wording level, its timing.

- Valence/arousal target ``(V, A) = s * (Pv[c], 0.7 * Pa[c]) + mood`` with class prototypes
  (Russell's circumplex: Anger (-.6, .6), Disgust (-.6, -.3), Fear (-.5, .6), Happiness (.7, .3),
  Sadness (-.6, -.5), Surprise (.4, .6), Other (.2, -.2), Neutral (0, 0)). Over time the expressed
  part sways (85-100 %, 0.15-0.5 Hz) and each segment fades in over 0.6 s from the last:
  ``mu(t) = (1 - w) * (h_prev * E_prev + M_prev) + w * (h * E + M)``, smooth trajectories.
  |mu| <= 0.85.
- The expression label is the segment's class, switching halfway through the fade.
- Action unit k is on when ``s * W[c][k] >= 0.5`` (FACS-style prototypes, ``model.AU_WEIGHTS``:
  e.g. Anger AU4 AU7 AU23 AU24, Disgust AU4 AU7 AU10 AU15, Happiness AU6 AU12 AU25); AU25 (lips
  part) is also on while the person speaks.
- The face shows (smile, brow, jaw) = s * prototype(c), swaying and fading with the labels; the jaw
  also follows the speech envelope, normalised per sentence so the face does not show loudness;
  head motion and brightness are nuisance. Leaving the frame is a camera pan to the backdrop over
  0.4 s (no face detected from half-way), back after the next segment has faded in.
- The voice says one sentence of the wording level ``round(V / 0.25)`` (-3 deep sympathy .. +3 awe,
  the EMI demo's pools) 0.7-1.0 s into the segment, espeak-ng speed ``165 + 20 A`` wpm, amplitude
  ``110 + 80 A``, pitch ``base + 30 A`` (base 42-58 per person); faint noise between. The speed
  changes little: the sentence's length, which the lips show too, would tell the arousal.

So arousal is mostly heard and only weakly seen (the mood carries most of it), Anger/Disgust need
the voice and Fear/Surprise the words, and segments without the face need both: no single modality
reaches the fused ceiling. The annotators (``labels``) add a smooth VA wobble of size ``va_noise``
(clipped symmetrically, so E[y | latents] = mu exactly), class and AU flips in runs (``label_flip``),
invalid stretches, and no AU labels where the face is out of the frame.

Noise ceilings (``ceiling``, ``posterior``): the best score any model seeing a set of modalities can
reach, computed as for EMI on Monte Carlo draws of the model (2000 tracks at 5 fps) with the
conditional expectations exact (enumeration over the 1440 configurations per segment): VA CCC =
corr(E[y | O], y); EXPR macro F1 of the F1-optimal rule on P(class | O); AU mean F1 of the
F1-optimal thresholds on P(AU | O). With the defaults (seed 0):

================  =======  ======  =====  =====  ============  ===========  ==========  =====
ceiling           latents  visual  audio  text   visual+audio  visual+text  audio+text  fused
================  =======  ======  =====  =====  ============  ===========  ==========  =====
VA CCC valence    0.960    0.836   0.656  0.822  0.860         0.916        0.826       0.916
VA CCC arousal    0.952    0.553   0.831  0.180  0.859         0.757        0.831       0.859
VA CCC mean       0.956    0.695   0.743  0.501  0.860         0.836        0.828       0.888
EXPR macro F1     0.946    0.727   0.488  0.305  0.814         0.797        0.619       0.857
AU mean F1        0.784    0.741   0.543  0.432  0.762         0.752        0.603       0.768
================  =======  ======  =====  =====  ============  ===========  ==========  =====

(Monte Carlo spread over seeds: standard deviation <= 0.004), and the same per split of the
generated tracks in ceiling.json ("generated"; docs/demo-tracks.md has them).

Layout written by ``generate.generate_tracks`` (``../shared/docs/affwild2.md``)::

    batch1/<id>-<fps>-<W>x<H>.mp4 | .avi              the videos (one two people wide per pair)
    6th_ABAW_Annotations/{VA_Estimation_Challenge,EXPR_Recognition_Challenge,AU_Detection_Challenge}/
        {Train_Set,Validation_Set,Test_Set}/<track>.txt   header line, then one line per frame
    names_of_videos_in_each_test_set/<task>_test_set_release.txt    test tracks, one per line
    prediction_files_format/CVPR_6th_ABAW_{VA,Expr,AU}_test_set_sample.txt
    latents.parquet   per track and label line: latents, what each modality shows, noise-free labels
    ceiling.json      the ceilings: per task latents, fused, modalities, generated per split

No ``cropped_aligned/`` folder: the pipeline's detector finds the faces. Everything is a pure
function of the ``demo.*`` params: two runs, whatever ``workers``, give byte-identical files.
"""

from pipeline.demo.tracks.generate import generate_tracks

__all__ = ["generate_tracks"]
