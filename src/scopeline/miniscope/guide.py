"""Explanations of the pipeline's steps and parameters, after the Miniscope Processing
Pipeline (MPS) guide (Apache-2.0), for the parameter forms of ``scopeline serve``.

``STEPS[step]`` is what the guide says a step is for; ``FIELDS["step.field"]`` its advice on
one parameter (shown beside the model's own ``description``, which says what the value
means in scopeline). Where scopeline's step differs from the guide's the text says so.
"""

from __future__ import annotations

STEPS: dict[str, str] = {
    "config": "Step 1, project configuration: the ids name the outputs; the frame rate times every "
              "result. Test on a fraction of the video first (the run option 'fraction'), then run the whole.",
    "load": "Step 2a: the files matched by a regular expression on their names, read in natural order. "
            "Downsampling is optional when the machine has the resources. Line-splitting detection is optional: "
            "turn it on when vertical lines or artefacts show at the left edge of the frames.",
    "preprocess": "Step 2b, background removal and denoising, frame by frame. Median is the general-purpose "
                  "default (salt-and-pepper noise, edges kept); gaussian blurs evenly; bilateral keeps neuron "
                  "boundaries sharp but is slower; anisotropic follows elongated structures and is slowest. "
                  "Tophat background removal is robust for most data; uniform is faster, for smooth, gradual "
                  "background changes.",
    "motion": "Steps 2c-2e: rigid motion correction by recursive phase correlation (one of the longer steps), "
              "quality control (frames moving more than the threshold are dropped) and validation of the "
              "corrected data. Keep the fill value at zero.",
    "crop": "Step 3a: crop to the imaging field. Keep the crop as tight as possible: it sets the speed of every "
            "later step. A circle centred on the imaging field; adjust the offset when the field is not centred.",
    "init": "Step 3b, NNDSVD: a fast decomposition of the whole video into a few non-negative spatial "
            "components, a good-enough starting point for CNMF (component 0 is usually the background). Tuning it "
            "gives diminishing returns; the variance-explained plot reaching 95-99 % is enough. Only the watershed "
            "detection reads it: with the default seeds detection it is skipped (init.when = 'always' computes it).",
    "detect": "Step 4, candidate units: seeds (default, crowded fields) or the guide's watershed search (4a/4b), "
              "spatial merge (4c), trace extraction (4d), A/C initialisation (4e), removal of NaN, empty and flat "
              "units (4f) and temporal merge (4g). Better to over-segment here: CNMF prunes false positives.",
    "noise": "Step 5: per-pixel noise, which tells CNMF which parts of the signal to trust, and the size filter "
             "of the units before CNMF (components outside the range are likely artefacts or merged neurons).",
    "cnmf_temporal": "Step 6, the first full CNMF solution of the traces: YrA (the movie projected on each "
                     "footprint), its validation, parameter suggestions and the temporal update (C calcium, S "
                     "spikes). Scientifically the most important step: its parameters have the most leverage.",
    "cnmf_spatial": "Step 7, spatial refinement: dilation, clustering and bounding boxes prepare local patches; "
                    "the LASSO update refines the footprints; then merge and optional smoothing. Tune it when the "
                    "footprints' appearance matters; the traces carry the science.",
    "export": "Step 8: the final temporal update with the refined footprints, the final filter (size, SNR, "
              "correlation) and the export. Identical step-8 parameters across sessions make traces comparable "
              "on an absolute scale.",
}

FIELDS: dict[str, str] = {
    # 1
    "config.animal_id": "Any text here (the guide's GUI accepts numbers only; scopeline does not need that).",
    "config.fps": "Every time in the results (timestamps, decay times, the smoothing windows given in seconds) "
                  "comes from it.",
    # 2a
    "load.pattern": "The .avi pattern is pre-set. Tip from the guide: paste an example file path into an LLM and "
                    "it will write the regular expression.",
    "load.downsample_space": "Optional when the machine has enough memory; 2 makes every later step about 4x "
                             "cheaper.",
    "load.line_split": "Enable when vertical lines or artefacts show at the left edge of the videos; removed "
                       "frames are listed in all_removed_frames.txt.",
    "load.line_split_width": "The guide looks for signal in the leftmost 20 pixels.",
    "load.line_split_threshold": "The guide's rule drops frames whose left-edge mean exceeds mean + 2 std.",
    # 2b
    "preprocess.denoise": "median: salt-and-pepper noise, preserves edges (default); gaussian: smooth uniform "
                          "blur, loses sharp detail; bilateral: edge-preserving, slower; anisotropic: follows "
                          "structure shape, good for elongated neurons, slowest.",
    "preprocess.background": "tophat: subtracts a morphologically opened image, robust for most data; uniform: "
                             "rolling-average subtraction, faster, for smooth gradual background; none.",
    "preprocess.background_size": "Larger than a cell (a cell-sized disk removes the cells too).",
    # 2c-2e
    "motion.max_shift": "Motion correction uses recursive estimation with phase correlation; expect about 3x "
                        "the video size in RAM in the guide's implementation (scopeline works chunk by chunk).",
    "motion.mesh": "For significant non-rigid motion: a mesh size such as [5, 5] (a 5 x 5 grid of control "
                   "points). Slow.",
    "motion.qc_threshold": "2d, threshold factor: how many standard deviations above the mean the motion must "
                           "be before a frame is dropped.",
    "motion.fill_value": "2e: keep the fill value at zero (for NaNs).",
    "motion.validate_output": "2e: keep checked; validates the integrity of the transformed data.",
    # 3a
    "crop.shape": "Use a circular crop centred on the imaging field; keep the crop as tight as possible.",
    "crop.center_offset": "Adjust the offset if the field is not centred.",
    "crop.radius_factor": "Below 1 crops tighter (faster); the crop sets the speed of every later step.",
    # 3b
    "init.n_components": "Component 0 typically captures background variation; 1+ are candidate neural "
                         "signals. Even 20-50 components typically capture 99 %+ of the variance in a sparse region.",
    "init.power_iterations": "Refines the SVD; 5 is usually sufficient.",
    "init.sparsity_threshold": "0.05 keeps signals 5 % above the noise floor. Lower in regions with few, quiet "
                               "neurons (keeps dim but genuine signals); higher in dense regions (excludes noise).",
    "init.spatial_regularization": "Encourages blob-like components: increase for larger, spread-out neurons, "
                                   "decrease for very small, compact ones.",
    "init.chunk_frames": "Decrease for less memory at the cost of slower processing.",
    "init.seed": "Seed of the random projections of the randomized SVD (same seed, same result).",
    # 4
    "detect.min_distances": "4a: minimum pixel distance between neuron centres; 10, 20, 30 tests different "
                            "spacings.",
    "detect.threshold_rels": "4a: how much brighter than its surroundings a peak must be (0.1 = 10 %). Lower "
                             "finds more candidates (and noise); CNMF prunes false positives, so over-seeding is "
                             "not catastrophic, just slower.",
    "detect.sigmas": "4a: smoothing before peak finding (1.0 sharp, 2.0 slightly blurry).",
    "detect.sample_size": "4a: components tested (20 is usually enough).",
    "detect.min_region_size": "4b: the smallest neuron you accept. Be permissive: small components are filtered "
                              "later.",
    "detect.merge_distance": "4c: how close (px) two centres must be to consider merging (25 px is a good start).",
    "detect.merge_size_ratio": "4c: no merge when one component is much larger (5.0 = up to 5x).",
    "detect.min_component_size": "4c: removes anything smaller (9 px = 3 x 3).",
    "detect.batch_size": "4d: components per batch (10 is safe).",
    "detect.frame_chunk": "4d: frames per load (10,000 works for most systems).",
    "detect.component_limit": "4d: for testing, process a subset first.",
    "detect.normalize": "4e: max normalises to the brightest pixel (default, works well); l1 by total "
                        "brightness, when sizes vary a lot; l2 by energy; none: raw values.",
    "detect.temporal_corr_threshold": "4g: how similar traces must be to merge (0.75 = 75 %).",
    "detect.spatial_overlap_threshold": "4g: how much components must overlap (0.3 = 30 %).",
    # 5
    "noise.noise_scaling": "5a: noise is higher in active regions (shot noise of the indicator); the default "
                           "1.5 scales the estimate up in bright areas.",
    "noise.smoothing_sigma": "5a: smooths the noise map against pixel-to-pixel variation (1.0 = gentle).",
    "noise.background_threshold": "5a: mean (a good default), median (more robust to outliers) or custom.",
    "noise.check_nan": "5b: NaN/Inf break CNMF: always check (may be slow on huge datasets).",
    "noise.min_size": "5b: components outside 10-1,000 px are likely artefacts or merged neurons.",
    "noise.max_size": "5b: components outside 10-1,000 px are likely artefacts or merged neurons.",
    # 6
    "cnmf_temporal.subtract_background": "6a: recommended.",
    "cnmf_temporal.use_float32": "6a: halves the memory with minimal precision loss; always recommended.",
    "cnmf_temporal.fix_nan": "6a: replace NaN with zeros before the projection.",
    "cnmf_temporal.validation_units": "6b: units sampled for the check of YrA; 5 is usually enough to spot issues.",
    "cnmf_temporal.validation_frames": "6b: where the checked frames come from: random, or the start, middle or "
                                       "end of the recording.",
    "cnmf_temporal.validation_n_frames": "6b: frames in the check of YrA; 1,000 is sufficient.",
    "cnmf_temporal.auto_suggest": "6c: data-driven AR order, sparse penalty and zero threshold (from the SNR, "
                                  "dynamics and spike rates); treat them as an informed hypothesis.",
    "cnmf_temporal.ar_order": "6d: AR 1 is a simple decay: two spikes before the return to baseline count as one "
                              "event; cleaner, sparser traces. AR 2 resolves closely spaced events but gives noisier "
                              "traces.",
    "cnmf_temporal.sparse_penalty": "6d: higher gives fewer but more confident spikes; lower more spikes with a "
                                    "higher noise risk (then raise the zero threshold).",
    "cnmf_temporal.zero_threshold": "6d: values below it are set to zero; complements a lower sparse penalty "
                                    "(more events, low-amplitude noise suppressed).",
    "cnmf_temporal.max_iterations": "6d: 500 is usually sufficient.",
    "cnmf_temporal.chunk_size": "6d: 5,000 frames per chunk with a 100-frame overlap avoid edge artefacts.",
    "cnmf_temporal.overlap": "6d: 5,000 frames per chunk with a 100-frame overlap avoid edge artefacts.",
    "cnmf_temporal.min_spike_sum": "6e: components whose spikes sum below this (default 1e-6) did not optimise "
                                   "well and are removed.",
    "cnmf_temporal.min_calcium_variance": "6e: components whose calcium trace varies less (default 1e-6) are "
                                          "removed (dead or artefact).",
    "cnmf_temporal.min_spatial_sum": "6e: components whose footprint sums below this (default 1e-6) are removed.",
    # 7
    "cnmf_spatial.dilation_window": "7a: radius of the structuring element (3 px typical). Larger expands more, "
                                    "at the risk of merging neighbours.",
    "cnmf_spatial.dilation_threshold": "7a: only pixels above this fraction of the max are dilated (0.1 = 10 %); "
                                       "higher is more conservative.",
    "cnmf_spatial.max_cluster_size": "7b: components per cluster processed together (10 by default).",
    "cnmf_spatial.min_area": "7b: excludes trivially small components from clustering.",
    "cnmf_spatial.min_intensity": "7b: excludes trivially dim components from clustering.",
    "cnmf_spatial.overlap_threshold": "7b: 0.2 (20 %) by default.",
    "cnmf_spatial.bbox_dilation_radius": "7c: footprints are expanded by this radius (10 px) before their "
                                         "bounding box is computed.",
    "cnmf_spatial.bbox_padding": "7c: extra space (20 px) around the dilated shapes; important near cluster edges.",
    "cnmf_spatial.bbox_min_size": "7c: the smallest bounding box allowed (40 px).",
    "cnmf_spatial.bbox_intensity_threshold": "7c: the fraction of a component's max (0.05) that counts as part "
                                             "of the neuron.",
    "cnmf_spatial.auto_suggest": "7d: suggestions from temporal variability, coherence, signal and shape. "
                                 "Fragmented neurons: lower penalties; merging neurons: higher penalties; missing dim "
                                 "neurons: lower STD threshold; too much noise: higher.",
    "cnmf_spatial.min_penalty": "7e: higher penalties give compact, tightly defined footprints; lower more "
                                "expansive ones.",
    "cnmf_spatial.max_penalty": "7e: higher penalties give compact, tightly defined footprints; lower more "
                                "expansive ones.",
    "cnmf_spatial.min_std": "7e: pixels below this variability are excluded from the update.",
    "cnmf_spatial.smoothing": "7f: optional. Too high a sigma makes footprints bleed into diffuse blobs; blocky "
                              "components come from bounding boxes, not from smoothing.",
    "cnmf_spatial.smoothing_sigma": "7f: the Gaussian sigma (px) of the optional smoothing; reduce it or turn "
                                    "smoothing off when components look spread or merged.",
    "cnmf_spatial.handle_overlaps": "7f: keep on in almost all cases (else inconsistent boundaries where "
                                    "cluster windows overlap).",
    "cnmf_spatial.save_both": "7f: saves the raw and the smoothed versions for comparison.",
    # 8
    "export.include_background": "8b: incorporates the background components (b, f).",
    "export.chunk_size": "8b: temporal chunking keeps the memory low for long recordings.",
    "export.min_size": "8c: final quality filtering.",
    "export.min_snr": "8c: final quality filtering.",
    "export.formats": "Zarr: chunked, for out-of-memory analysis; NumPy: most Python pipelines; JSON: readable "
                      "metadata and ids; pickle: quick Python-to-Python transfer; NWB: the neurophysiology standard.",
    "export.session_description": "Recorded as the NWB file's session description.",
}


def step_text(step: str) -> str:
    """The guide's explanation of ``step`` ('' when it has none)."""
    return STEPS.get(step, "")


def field_text(step: str, field: str) -> str:
    """The guide's advice on ``step.field`` ('' when it has none)."""
    return FIELDS.get(f"{step}.{field}", "")


__all__ = ["STEPS", "FIELDS", "step_text", "field_text"]
