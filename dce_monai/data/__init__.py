"""dce_monai.data: cohorts in, MONAI datalists out (the lowest layer: of dce_monai it imports only base modules such as sequences).

- :mod:`.manifest`: load, check and save cohort manifests; turn them into datalists.
- :mod:`.validate`: open every file a manifest names and list every problem.
- :mod:`.folds`: patient-wise stratified k-fold splits, saved as JSON.
- :mod:`.phantom`: the synthetic breast DCE-MRI cohort (package: config, physics, anatomy, cohort).
- :mod:`.dicom`: DICOM folder to NIfTI + manifest (package: scan, deid, volumes, phases, ingest).
- :mod:`.importers`: public dataset layouts (MAMA-MIA, mapping CSV, BreastDCEDL) to manifests.
- :mod:`.layouts`: write phantom cohorts in a public dataset's layout (to test the importers).
- :mod:`.io`: the one NIfTI writer (header convention, atomic write).

The ``dce-monai`` commands over these modules are in :mod:`dce_monai.cli`.
"""
