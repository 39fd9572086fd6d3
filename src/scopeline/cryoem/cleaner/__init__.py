"""Deep micrograph cleaner: remove picks on carbon, contamination, crystalline ice, ethane.

``run_clean`` / ``rethreshold`` / ``CleanParams`` live in :mod:`.clean`; the network in
:mod:`.model` (torch), inference in :mod:`.predict` (onnxruntime), training data in
:mod:`.synth`, training in :mod:`.train`.
"""
