"""The built-in synthetic dataset (stage ``make_demo``).

Modules: ``latent`` (the generative model of the labels and its noise ceiling), ``sentences``
(the wording pools), ``face`` (the warped face video), ``speech`` (espeak-ng), ``clips`` (one clip
and the planted faults), ``media`` (H.264/AAC muxing, also used by tests and benchmarks),
``generate`` (the whole dataset, written atomically). The frame-level tasks' demo, a miniature
Aff-Wild2 release, is the ``tracks`` package.

Generative model
----------------
Each clip has five independent latent factors, each observable through one modality only:

==========  ========  =======================  =====================================================
latent      modality  distribution             how it shows
==========  ========  =======================  =====================================================
smile       visual    uniform [-1, 1]          mouth corners lift and widen (+) or drop and narrow (-)
brow        visual    uniform [-1, 1]          brows raise (+) or lower and knit (-)
arousal     audio     uniform [-1, 1]          espeak-ng speed 120..210 wpm and amplitude 50..170
pitch       audio     uniform [-1, 1]          espeak-ng pitch 20..80
wording     text      uniform on 7 levels      the sentence: -3 deep sympathy .. 0 neutral .. +3 awe
==========  ========  =======================  =====================================================

The video is a real face (``skimage.data.astronaut()``, NASA, public domain) warped over time by
smooth displacement fields (``cv2.remap``): the smile and brow latents set the peak of an expression
that rises from neutral at a random onset; the jaw follows the speech envelope; the head drifts
(translation, rotation, scale). The audio is espeak-ng (``en-us``) saying a sentence drawn from
the pool of the clip's wording level, with faint background noise.

Labels: emotion e has logit ``sum_k W[e][k] * latent_k`` (``EMOTION_WEIGHTS``; each emotion reads
latents of one or two modalities), mean ``mu = sigmoid(logit)`` and label
``y = clip(mu + N(0, label_noise^2), 0, 1)``. The noise ceiling (best achievable Pearson) of an
emotion is ``corr(E[y | latents], y)``; restricted to the latents of a modality subset it is
``corr(E[y | those latents], y)``. ``latent.noise_ceiling`` estimates both on 200,000 Monte Carlo
draws of the same model, with the conditional expectations integrated numerically (closed form
for the clipped Gaussian, Gauss-Legendre quadrature over the unobserved latents; error < 1e-5).
With the default ``label_noise = 0.15`` (seed 0) the mean Pearson ceilings are: fused 0.892;
visual 0.397, audio 0.347, text 0.361; visual+audio 0.653, visual+text 0.636, audio+text 0.708.

How readable each latent is from the clips (``benchmarks/bench_demo.py --check``, 40 clips):
faster-whisper base transcribes every sentence exactly (WER 0.0) and a leave-one-out ridge on the
all-MiniLM-L6-v2 embeddings of the transcripts recovers the wording level (Pearson 0.96); the
face-mesh mouth-corner lift correlates 0.97 with smile and the brow-to-eye distance 0.95 with brow;
the FER2013 mini-Xception "happy" probability moves only weakly (Pearson 0.49, range 0.93-1.00),
because the source face smiles with visible teeth at every smile level.

Layout written by ``generate.generate_demo`` (the contract with ``pipeline.ingest.manifest.read_demo``)::

    clips/<clip_id>.mp4   (the variable-frame-rate fault clip is .mkv)
    labels.csv            clip_id,split,<six emotions>   (labels always present)
    faults.json           {clip_id: {fault, status, path, modalities: {visual, audio, text}}}
    latents.parquet       per clip: split, fault, latents, sentence, espeak settings, timing,
                          and the noise-free expected labels ``expected_<emotion>``
    ceiling.json          noise ceiling: fused, per modality, per modality pair, and on the clips

Fault clips (``demo.faults``) are extra clips with labels, spread over the splits; ``faults.json``
gives the decode status each should get and which modalities it really carries (a decoder cannot
hear a sentence in 0.24 s, so the too-short clip has audio but no text).
Everything is a pure function of ``demo.seed`` and the other ``demo.*`` params: two runs give
byte-identical files (single-threaded encoders, bit-exact muxing, no timestamps in metadata).
"""

from pipeline.demo.generate import generate_demo

__all__ = ["generate_demo"]
