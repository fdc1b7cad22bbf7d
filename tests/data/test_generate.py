"""Jets from Pythia 8 + FastJet: physics sanity, internal consistency, reproducibility, resume."""

from __future__ import annotations

import numpy as np
import pytest

from jetlab.data.driver import _block_images, generate_dataset
from jetlab.data.generate import GeneratorSettings, JetGenerator, match_to_targets
from jetlab.data.summary import half_sample_mode
from jetlab.io import open_jets
from jetlab.io.layout import CLASS_NAMES, JET_FEATURES, PARTICLE_FEATURES
from jetlab.physics.particles import dense_images

P = {name: i for i, name in enumerate(PARTICLE_FEATURES)}
J = {name: i for i, name in enumerate(JET_FEATURES)}


@pytest.fixture(scope="module")
def resonance_jets():
    """150 W, Z and top jets each."""
    return {c: JetGenerator(c, 30).generate(150, seed=11) for c in ("w", "z", "t")}


@pytest.mark.xdist_group("resonance_jets")  # one worker generates them
@pytest.mark.parametrize("jet_class, peak", [("w", 80.4), ("z", 91.2), ("t", 172.7)])
def test_jet_mass_peaks_at_the_resonance_mass(resonance_jets, jet_class, peak):
    jets = resonance_jets[jet_class]["jets"]
    mode = half_sample_mode(jets[:, J["j_mass"]])
    # ungroomed R = 0.8 jets carry some underlying event: the peak sits a few GeV high
    assert peak - 10 < mode < peak + 15, mode
    groomed = half_sample_mode(jets[:, J["j_mass_mmdt"]])
    assert abs(groomed - peak) < 12, groomed


def test_half_sample_mode_finds_the_peak():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(80.0, 3.0, 300), rng.uniform(100.0, 300.0, 700)])  # peak beside a wide tail
    assert abs(half_sample_mode(x) - 80.0) < 3.0
    assert abs(np.median(x) - 80.0) > 10.0


def test_jets_are_labelled_and_in_the_pt_window(tiny_jets_dir):
    jets = open_jets(tiny_jets_dir)
    assert jets.n_jets == 5 * 40
    assert np.bincount(jets.labels(), minlength=5).tolist() == [40] * 5
    for f in jets.files:
        table = f.jet_features()
        assert ((table[:, J["j_pt"]] > 800) & (table[:, J["j_pt"]] < 1200)).all()
        assert (np.abs(table[:, J["j_eta"]]) < 2.5).all()
        np.testing.assert_array_equal(table[:, J["j_undef"]], 0)


def test_gluon_jets_are_wider_and_softer_than_quark_jets(tiny_jets_dir):
    jets = open_jets(tiny_jets_dir)
    labels = jets.labels()
    everything = np.arange(jets.n_jets)
    parts, _ = jets.read(everything, "particles")
    table = jets.read(everything, "jet")
    g, q = labels == CLASS_NAMES.index("g"), labels == CLASS_NAMES.index("q")
    leading = parts[:, 0, P["ptrel"]]
    assert leading[q].mean() > leading[g].mean()
    assert table[g, 3].mean() > table[q, 3].mean()  # multiplicity


def test_particle_features_agree_with_each_other(tiny_jets_dir):
    jets = open_jets(tiny_jets_dir)
    parts, mask = jets.read(np.arange(jets.n_jets), "particles")
    real = parts[mask].astype(np.float64)
    f = {name: real[:, i] for name, i in P.items()}
    np.testing.assert_allclose(f["pt"], np.hypot(f["px"], f["py"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f["deltaR"], np.hypot(f["etarel"], f["phirel"]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["deltaR"], np.hypot(f["etarot"], f["phirot"]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f["eta"], np.arcsinh(f["pz"] / f["pt"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(f["costheta"], f["pz"] / np.sqrt(f["px"] ** 2 + f["py"] ** 2 + f["pz"] ** 2), atol=1e-5)
    # anti-kT R = 0.8 clusters in rapidity-phi: constituents lie within 0.8 of the axis there
    # (in pseudorapidity soft massive hadrons may stray further)
    table = jets.read(np.arange(jets.n_jets), "jet").astype(np.float64)
    jet_pt, jet_eta, jet_mass = (np.broadcast_to(table[:, k : k + 1], mask.shape)[mask] for k in range(3))
    jet_y = np.arcsinh(jet_pt * np.sinh(jet_eta) / np.hypot(jet_pt, jet_mass))
    y = 0.5 * np.log((f["e"] + f["pz"]) / (f["e"] - f["pz"]))
    assert (np.hypot(y - jet_y, f["phirel"]) < 0.8 + 0.02).all()
    # sorted by pT, padding only at the end
    pt = parts[..., P["pt"]]
    assert (np.diff(pt, axis=1)[mask[:, 1:]] <= 0).all()
    assert (mask[:, :-1] >= mask[:, 1:]).all()
    assert (parts[~mask] == 0).all()
    # ptrel is pT over the jet's pT; where every constituent is listed, they add up to the jet
    np.testing.assert_allclose(parts[..., P["ptrel"]][mask], pt[mask] / jet_pt, rtol=1e-4)
    whole = table[:, 3] <= parts.shape[1]
    assert whole.sum() >= 5
    summed = parts[whole].astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(np.hypot(summed[:, P["px"]], summed[:, P["py"]]), table[whole, 0], rtol=1e-4)


def test_jet_image_holds_the_jet_pt(tiny_jets_dir):
    jets = open_jets(tiny_jets_dir)
    images = jets.read(np.arange(20), "image")
    pt = jets.read(np.arange(20), "jet")[:, 0]
    # all constituents are within 0.8 of the axis; the image spans +-0.8: scalar pT sum >= vector pT
    assert (images.sum(axis=(1, 2)) >= 0.98 * pt).all()
    assert (images >= 0).all()


def test_same_seed_gives_the_same_jets_whatever_the_workers(tmp_path):
    one = generate_dataset(tmp_path / "a", classes=["t"], jets_per_class=30, seed=5, workers=1, show_progress=False)
    two = generate_dataset(tmp_path / "b", classes=["t"], jets_per_class=30, seed=5, workers=2, show_progress=False)
    other = generate_dataset(tmp_path / "c", classes=["t"], jets_per_class=30, seed=6, workers=1, show_progress=False)
    a, b, c = (open_jets(f[0]).files[0] for f in (one, two, other))
    np.testing.assert_array_equal(a.read("jetConstituentList"), b.read("jetConstituentList"))
    np.testing.assert_array_equal(a.read("jets"), b.read("jets"))
    np.testing.assert_array_equal(a.read("jetImage"), b.read("jetImage"))  # sparse between processes
    assert not np.array_equal(a.read("jets"), c.read("jets"))


def test_sparse_images_round_trip(tiny_jets_dir):
    images = open_jets(tiny_jets_dir).read(np.arange(50), "image")
    assert 0 < (images > 0).mean() < 0.05
    flat = images.reshape(len(images), -1)
    jet, pixel = np.nonzero(flat)
    block = {"image_count": np.bincount(jet, minlength=len(images)).astype(np.int32),
             "image_pixel": pixel.astype(np.int16), "image_value": flat[jet, pixel]}
    np.testing.assert_array_equal(dense_images(block["image_count"], block["image_pixel"], block["image_value"]), images)
    np.testing.assert_array_equal(_block_images(block), images)
    # a block written by a jetlab from before sparse images (dense "images") is read as it is
    np.testing.assert_array_equal(_block_images({"images": images}), images)


def _match_one_event_at_a_time(jet_p4, jet_event, target_p, target_event, s):
    """The matching rule written out event by event, target by target (test oracle)."""
    def eta_phi(p):
        pt = np.hypot(p[0], p[1])
        return pt, np.arcsinh(p[2] / pt), np.arctan2(p[1], p[0])

    out = []
    for event in np.unique(target_event):
        jets = np.flatnonzero(jet_event == event)
        used = set()
        for t in np.flatnonzero(target_event == event):
            t_pt, t_eta, t_phi = eta_phi(target_p[t])
            best, best_dr = None, np.inf
            for j in jets:
                _, eta, phi = eta_phi(jet_p4[j])
                dphi = (phi - t_phi + np.pi) % (2 * np.pi) - np.pi
                dr = np.hypot(eta - t_eta, dphi)
                if dr < best_dr:
                    best, best_dr = j, dr
            if best is None or best_dr >= s.match_radius or best in used:
                continue
            used.add(best)
            pt, eta, _ = eta_phi(jet_p4[best])
            if s.jet_pt_min < pt < s.jet_pt_max and abs(eta) < s.jet_abs_eta_max:
                out.append((int(t), int(best), float(t_pt)))
    return out


def test_matching_agrees_with_an_event_by_event_oracle():
    rng = np.random.default_rng(4)
    s = GeneratorSettings()
    n_jets, n_targets = 400, 160
    def momenta(n, pt_low, pt_high):
        pt, eta, phi = rng.uniform(pt_low, pt_high, n), rng.uniform(-3.5, 3.5, n), rng.uniform(-np.pi, np.pi, n)
        return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta) + 5.0], axis=1)
    jet_p4 = momenta(n_jets, 500, 1400)
    jet_event = np.sort(rng.integers(0, 60, n_jets))
    target_event = np.sort(rng.integers(0, 70, n_targets))          # some events without jets
    target_p = momenta(n_targets, 700, 1300)
    # targets next to a jet of their event (often two next to the same jet)
    for t in range(0, n_targets, 2):
        jets = np.flatnonzero(jet_event == target_event[t])
        if len(jets):
            target_p[t] = jet_p4[jets[0]] * 1.01
    got = []
    for event in np.unique(target_event):          # the generator matches one event at a time
        jets, targets = np.flatnonzero(jet_event == event), np.flatnonzero(target_event == event)
        got += [(targets[t], jets[j], pt) for t, j, pt in match_to_targets(jet_p4[jets], target_p[targets], s)]
    expected = _match_one_event_at_a_time(jet_p4, jet_event, target_p, target_event, s)
    assert len(expected) > 20
    assert [(t, j) for t, j, _ in got] == [(t, j) for t, j, _ in expected]
    np.testing.assert_allclose([x[2] for x in got], [x[2] for x in expected], rtol=1e-12)


def _whole_record(event):
    """(id, status, daughter1, four-momenta (n, 4)) of every entry of a Pythia event record."""
    particles = event.particles()
    pid = np.array([p.id() for p in particles])
    status = np.array([p.status() for p in particles])
    daughter1 = np.array([p.daughter1() for p in particles])
    p4 = np.array([(p.px(), p.py(), p.pz(), p.e()) for p in particles])
    return pid, status, daughter1, p4


def _targets_by_scanning_the_whole_record(jet_class, pid, status, daughter1):
    """The oracle: every entry of the record that a jet of the class may be matched to."""
    if jet_class in ("g", "q"):
        kind = (pid == 21) if jet_class == "g" else (np.abs(pid) <= 5)
        return np.flatnonzero((status == -23) & kind).tolist()
    resonance = {"w": 24, "z": 23, "t": 6}[jet_class]
    daughter_id = pid[np.where(daughter1 > 0, daughter1, 0)]
    return np.flatnonzero((np.abs(pid) == resonance) & (np.abs(daughter_id) != resonance) & (daughter1 > 0)).tolist()


@pytest.mark.parametrize("jet_class", CLASS_NAMES)
def test_targets_are_those_of_a_scan_of_the_whole_record(jet_class):
    generator = JetGenerator(jet_class, 30)
    generator.pythia.rndm.init(21)
    checked = 0
    while checked < 12:
        if not generator.pythia.next():
            continue
        event = generator.pythia.event
        pid, status, daughter1, _ = _whole_record(event)
        expected = _targets_by_scanning_the_whole_record(jet_class, pid, status, daughter1)
        assert expected, "every event of these processes has a parton/boson/top"
        assert generator.targets(event) == expected
        checked += 1


@pytest.mark.parametrize("jet_class", ["g", "t"])
def test_jets_are_fastjets_anti_kt_on_the_visible_final_state(jet_class):
    """Pythia's SlowJet (fjcore) against the fastjet package on the same particles."""
    from jetlab.physics.substructure import import_fastjet

    fastjet = import_fastjet()
    generator = JetGenerator(jet_class, 30)
    generator.pythia.rndm.init(8)
    finder, s = generator.jet_finder, generator.settings
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, s.jet_radius)
    n_jets = 0
    for _ in range(6):
        while not generator.pythia.next():
            pass
        event = generator.pythia.event
        pid, status, _, p4 = _whole_record(event)
        visible = np.flatnonzero((status > 0) & ~np.isin(np.abs(pid), (12, 14, 16)))
        pseudojets = [fastjet.PseudoJet(*row) for row in p4[visible].tolist()]
        for row, jet in zip(visible.tolist(), pseudojets):
            jet.set_user_index(row)
        sequence = fastjet.ClusterSequence(pseudojets, definition)
        expected = sorted(sequence.inclusive_jets(0.5 * s.jet_pt_min), key=lambda jet: -jet.perp2())
        finder.analyze(event)
        assert finder.sizeJet() == len(expected)
        for j, jet in enumerate(expected):
            momentum = finder.p(j)
            np.testing.assert_allclose([momentum.px(), momentum.py(), momentum.pz(), momentum.e()],
                                       [jet.px(), jet.py(), jet.pz(), jet.E()], rtol=1e-12)
            assert sorted(finder.constituents(j)) == sorted(c.user_index() for c in jet.constituents())
            n_jets += 1
    assert n_jets >= 6


def test_no_fastjet_banner_on_stdout():
    """fjcore prints a 13-line banner at its first clustering; jetlab's output stays clean."""
    import subprocess
    import sys

    code = ("from jetlab.data.generate import JetGenerator\n"
            "g = JetGenerator('w', 30)\n"
            "print('jets', len(g.generate(2, seed=1)['jets']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout == "jets 2\n"


def test_quiet_stdout_hides_only_the_block_and_restores_fd_1():
    import os
    import subprocess
    import sys

    code = (
        "import ctypes, os\n"
        "from jetlab.data.generate import quiet_stdout\n"
        "libc = ctypes.CDLL(None)\n"
        "fds = len(os.listdir('/proc/self/fd'))\n"
        "libc.printf(b'before ')\n"                  # still in C's buffer when the block starts
        "with quiet_stdout():\n"
        "    libc.printf(b'hidden ')\n"
        "    os.write(1, b'hidden too ')\n"
        "libc.printf(b'after\\n'); libc.fflush(None)\n"
        "assert len(os.listdir('/proc/self/fd')) == fds\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # which unbuffers C's stdout too
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, env=env)
    assert result.stdout == "before after\n"


class _FailingPythia:
    """A Pythia whose next() fails ``failures`` times before each real event (the RNG untouched)."""

    def __init__(self, pythia, failures):
        self._pythia, self._failures, self._left = pythia, failures, failures

    def next(self):
        if self._left:
            self._left -= 1
            return False
        self._left = self._failures
        return self._pythia.next()

    def __getattr__(self, name):
        return getattr(self._pythia, name)


def test_failed_events_are_skipped_and_not_counted():
    expected = JetGenerator("w", 30).generate(6, seed=4)
    generator = JetGenerator("w", 30)
    generator.pythia = _FailingPythia(generator.pythia, failures=2)
    got = generator.generate(6, seed=4)
    assert got["events"] == expected["events"]
    np.testing.assert_array_equal(got["jets"], expected["jets"])


def test_a_pythia_that_always_fails_or_selections_that_keep_nothing_stop_with_an_error(monkeypatch):
    import jetlab.data.generate as generate

    monkeypatch.setattr(generate, "_MAX_FAILED_EVENTS", 5)
    generator = JetGenerator("g", 30)
    generator.pythia = _FailingPythia(generator.pythia, failures=10**9)
    with pytest.raises(RuntimeError, match="failed 6 events in a row"):
        generator.generate(1, seed=1)
    monkeypatch.setattr(generate, "_MAX_EVENTS_WITHOUT_JETS", 4)
    nothing = JetGenerator("g", 30, GeneratorSettings(jet_pt_min=5000.0, jet_pt_max=6000.0))
    with pytest.raises(RuntimeError, match="no g jet passed the selection in 4 events"):
        nothing.generate(1, seed=1)


@pytest.mark.slow
def test_interrupted_generation_resumes_to_the_same_files(tmp_path, monkeypatch):
    import jetlab.data.driver as driver  # it calls run_block (jetlab.data.generate's) in this process

    reference = generate_dataset(tmp_path / "ref", classes=["w"], jets_per_class=250, seed=9, workers=1, show_progress=False)
    real_run_block, calls = driver.run_block, []

    def run_block_then_die(task):
        if calls:
            raise KeyboardInterrupt
        calls.append(task)
        return real_run_block(task)

    monkeypatch.setattr(driver, "run_block", run_block_then_die)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "run", classes=["w"], jets_per_class=250, seed=9, workers=1, show_progress=False)
    assert not list((tmp_path / "run").glob("*.h5"))  # no file under a final name yet
    assert len(list((tmp_path / "run" / ".blocks").glob("*.npz"))) == 1
    monkeypatch.setattr(driver, "run_block", real_run_block)
    resumed = generate_dataset(tmp_path / "run", classes=["w"], jets_per_class=250, seed=9, workers=1, show_progress=False)
    assert [p.name for p in resumed] == [p.name for p in reference]
    np.testing.assert_array_equal(open_jets(resumed[0]).files[0].read("jets"), open_jets(reference[0]).files[0].read("jets"))
    assert not (tmp_path / "run" / ".blocks").exists()


def test_other_settings_in_the_same_directory_are_refused(tmp_path):
    from jetlab.errors import InputError

    generate_dataset(tmp_path, classes=["z"], jets_per_class=5, seed=1, workers=1, show_progress=False)
    with pytest.raises(InputError, match="other settings"):
        generate_dataset(tmp_path, classes=["z"], jets_per_class=5, seed=2, workers=1, show_progress=False)
