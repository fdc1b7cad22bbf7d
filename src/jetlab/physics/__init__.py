"""Jet physics in one place: kinematics (:mod:`.kinematics`: Δφ, ΔR, relative coordinates ↔
four-vectors, relative jet mass, image binning; numpy and torch), the hls4ml per-particle
features and jet images (:mod:`.particles`) and the substructure observables
(:mod:`.substructure`: N-subjettiness, energy correlators, groomed masses; its reference
path in :mod:`.substructure_fastjet`, :mod:`.energy_correlators` and :mod:`.constituents`,
its compiled path in :mod:`.substructure_fast`)."""

from jetlab.physics.kinematics import (
    RelativeJet,
    delta_phi,
    delta_r,
    four_momenta_from_relative,
    image_pixel_index,
    pt_eta_phi,
    relative_jet_kinematics,
    wrap_phi,
)

__all__ = [
    "RelativeJet",
    "delta_phi",
    "delta_r",
    "four_momenta_from_relative",
    "image_pixel_index",
    "pt_eta_phi",
    "relative_jet_kinematics",
    "wrap_phi",
]
