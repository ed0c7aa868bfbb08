"""Where work runs. ``devices``: CPUs this process may use, the device a model runtime sees, the
OpenMP and torch settings of a deterministic extractor; ``pools``: spawn process pools;
``executors``: the local and Ray executors that decode, asr and the feature stages run their units
of work on, and the crash-safe unit runner. Each stage imports only what it uses, so an edit to the
executors reruns only the stages that run on them (decode, asr, features@*).
"""
