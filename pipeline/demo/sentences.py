"""The demo's sentences, by wording level (-3 deep sympathy .. 0 neutral .. +3 awe)."""

from __future__ import annotations

# Sentence pools by wording level (-3..3): short, plain sentences whose sentence embeddings order
# by intensity. Each was kept only if faster-whisper base (beam 5, VAD) transcribed it exactly
# from espeak-ng at the four corners and the centre of the prosody range (33 of 35 at all five;
# "That was quite nice." and "I will check the weather later." at four); candidates with
# numbers, "That news", "hurting", "box" and the like failed and were replaced.
SENTENCES: dict[int, tuple[str, ...]] = {
    -3: (
        "I am so sorry for your painful loss.",
        "My heart breaks for you and your family.",
        "I am deeply sorry for all your suffering.",
        "I can't imagine how painful this is for you.",
        "I am heartbroken by your terrible loss.",
    ),
    -2: (
        "It hurts to see you so upset.",
        "This must be really hard for you.",
        "I feel so sad for you right now.",
        "I feel sorry that you lost your job.",
        "It is hard to watch you struggle.",
    ),
    -1: (
        "I hope things get better soon.",
        "That sounds like a tough day.",
        "Oh well, better luck next time.",
        "Sorry, that must be annoying.",
        "Too bad the shop was closed.",
    ),
    0: (
        "The meeting starts tomorrow morning.",
        "We need to buy some bread and milk.",
        "The library closes in the evening.",
        "My car is parked outside the house.",
        "I will check the weather later.",
    ),
    1: (
        "I like what you did there.",
        "That looks rather good to me.",
        "I think it was pretty good.",
        "Nice try, it looks good.",
        "That was quite nice.",
    ),
    2: (
        "You did a great job today.",
        "I really admire how you handled that.",
        "Your talent is clear to everyone.",
        "I am impressed by your hard work.",
        "Your idea was really smart.",
    ),
    3: (
        "What a brilliant and inspiring performance.",
        "That is the most beautiful work I have ever seen.",
        "You are my hero, I admire you so much.",
        "Wow, you are truly extraordinary.",
        "Your work is a true masterpiece.",
    ),
}
