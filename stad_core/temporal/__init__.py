"""Temporal activity detection (Charades-style): per-frame multi-label over whole videos.

Modules::

    annotations.py  Charades CSV + class list, MultiTHUMOS-style interval files (file:line errors)
    labels.py       per-step / per-frame labels from intervals
    metric.py       Charades_v1_localize (25 frames per video) and per-frame mAP
    submission.py   the localization submission file, in and out
    synth.py        the synthetic temporal-activity dataset (long-range motion vs fine flicker)
    features.py     fine-feature extraction (backbone depths per step) + coarse frames
    fine_bank.py    the fine bank's spec and its depth layout
    train.py        TemporalTrainConfig, training and scoring of the Coarse-Fine heads
"""
