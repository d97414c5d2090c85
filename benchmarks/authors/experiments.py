"""The authors' code (RobertCsordas/modules) at our cpu settings: the command-line flags of each experiment, why
each start-up patch is needed, and which of their logged tags becomes which of our numbers. Used by ``run.py``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PATCH_DIR = HERE / "patches"
AUTHORS_REPO = "https://github.com/RobertCsordas/modules"

# Why each patch is needed (also in README.md). None changes what is computed.
PATCH_REASONS = {
    "01-tasks-optional-torchvision.patch":
        "tasks/__init__.py imports every task eagerly; only the CIFAR-10 ResNet task needs torchvision (not "
        "installed): its import is wrapped in try/except ImportError, so that one task is unavailable",
    "02-sampler-base-init.patch":
        "framework/loader/sampler.py: three samplers pass data_source to torch.utils.data.Sampler.__init__, which "
        "current torch rejects (TypeError); the base constructor is called with no argument (it stored nothing)",
    "03-no-tensorboard-server.patch":
        "framework/helpers/training_helper.py: with -log tb the helper launches a TensorBoard server subprocess and "
        "asserts its binary exists; the launch is commented out, the SummaryWriter event files are still written",
    "04-mean-std-load.patch":
        "dataset/image/classification_dataset.py: the cached per-channel mean/std (numpy arrays, saved by their own "
        "first run) is read back with torch.load, which since torch 2.6 refuses numpy objects unless "
        "weights_only=False is passed; that argument is added",
}


class UserError(Exception):
    """A one-line error for the user (exit code 2)."""


class RunError(Exception):
    """A failed run (exit code 1)."""


def _addmul_flags(seed: int) -> list[str]:
    # ours: network "fnn" of the cpu preset, 42-400-400-200-20, at a fixed budget (their code cannot stop at target
    # or when settled): base 8,000 steps (Adam 1e-3, batch 128, clip 1), masks 7,500 steps (where every cpu mask of
    # ours settled), alpha 1e-4, mask lr 3e-2, K = 4, biases unmasked, clip over all parameters; ours at the same
    # budget: `python -m wmask run addmul --preset cpu` with the overrides in results/authors/README.md
    return ["-name", f"addmul_ff_400_s{seed}", "-reset", "1", "-task", "addmul_ff", "-layer_sizes", "400,400,200",
            "-n_digits", "2", "-batch_size", "128", "-lr", "1e-3", "-stop_after", "8000", "-step_per_mask", "7500",
            "-mask_loss_weight", "1e-4", "-mask_lr", "3e-2", "-bias_no_mask", "1", "-test_interval", "1000",
            "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _double_addition_flags(seed: int) -> list[str]:
    # ours: results/double_addition/cpu, network "fnn": 80-400-400-200-40, base 5,000 steps, masks 7,000 steps at
    # mask lr 3e-2, alpha 4e-4 (otherwise as add/mul)
    return ["-name", f"tuple_ff_400_s{seed}", "-reset", "1", "-task", "tuple_ff", "-layer_sizes", "400,400,200",
            "-n_digits", "2", "-batch_size", "128", "-lr", "1e-3", "-stop_after", "5000", "-step_per_mask", "7000",
            "-mask_loss_weight", "4e-4", "-mask_lr", "3e-2", "-bias_no_mask", "1", "-test_interval", "1000",
            "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _scan_flags(seed: int) -> list[str]:
    # ours: the SCAN LSTM's cpu preset: encoder-decoder, 2 layers x 128, embedding 16, dropout 0.5, teacher forcing
    # 0.5, base 20,000 steps (Adam 1e-3, batch 128, clip 5); masks at lr 3e-2 on batches of 64, alpha 7.5e-6 over 64
    # per logit, i.e. 1.5e-5 over 128 here (their regulariser divides by -batch_size, not -mask_batch_size), K = 4,
    # biases unmasked, clip over all parameters; ours stopped once settled (at most 8,000 steps when this ran; the
    # preset now allows 24,000, OURS below), theirs run 8,000 in each of their 4 stages (the full problem, then jump,
    # length, turn left). -test_interval 20000 gives the base
    # validation at its last step; -test_batch_size only batches evaluation. The former cpu preset's run (3,500 base
    # steps, 900 mask steps, alpha 3e-5 on batches of 128) is in results/authors/scan/former-cpu/.
    return ["-name", f"scan_lstm_128_s{seed}", "-reset", "1", "-task", "scan", "-n_layers", "2", "-state_size", "128",
            "-encoder_decoder.embedding_size", "16", "-dropout", "0.5", "-batch_size", "128", "-lr", "1e-3",
            "-grad_clip", "5", "-stop_after", "20000", "-step_per_mask", "8000", "-mask_loss_weight", "1.5e-5",
            "-mask_lr", "3e-2", "-mask_batch_size", "64", "-bias_no_mask", "1", "-test_interval", "20000",
            "-test_batch_size", "1024", "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _prepare_scan(seed_dir: Path, data_dir: Path):
    """Their Scan dataset downloads the 8 split files from GitHub into ./cache/scan unless they are there: copy
    ours (the same canonical files) so nothing is fetched."""
    src = data_dir / "scan"
    files = sorted(src.glob("*_split/tasks_*_*.txt"))
    if len(files) < 8:
        raise UserError(f"--data-dir {data_dir}: expected the SCAN split files under {src}/*_split/")
    dst = seed_dir / "cache" / "scan"
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (dst / f.name).exists():
            (dst / f.name).write_bytes(f.read_bytes())


def _cifar10_flags(seed: int) -> list[str]:
    # ours: the CNN's cpu preset (the paper's 32-64-128-256 CNN with dropout, biases masked): base 10,000 steps (Adam
    # 1e-3, batch 128, clip 1), masks at lr 1e-2 on 64 images a step with alpha 1.5e-4 over 64, i.e. 3e-4 over 128
    # per logit as here (their regulariser divides by -batch_size, 128, not by -mask_batch_size); ours stop when
    # settled (1,000-2,000 steps), theirs run the fixed 2,000 of each of their 11 stages (control, then one mask per
    # removed class, one after another). -analysis.plot_masks 0 only skips their periodic mask images;
    # -test_interval 10000 validates the base network at its last step (each of their validations also runs over
    # the 40k training images, ~1.5 min on one thread; at 1000 they would add about an hour).
    return ["-name", f"cifar10_cnn_s{seed}", "-reset", "1", "-task", "cifar10_class_removal", "-batch_size", "128",
            "-lr", "1e-3", "-stop_after", "10000", "-step_per_mask", "2000", "-mask_loss_weight", "3e-4",
            "-mask_lr", "1e-2", "-mask_batch_size", "64", "-class_removal.keep_last_layer", "1",
            "-test_interval", "10000", "-analysis.plot_masks", "0", "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _prepare_cifar10(seed_dir: Path, data_dir: Path):
    """Their CIFAR10 dataset downloads the canonical archive into ./cache/CIFAR10 unless that folder exists: write
    the copy we train on (``python -m wmask data cifar10 --write-batches``) there in the canonical pickle layout, so
    both codes see the same images and nothing is fetched."""
    dst = seed_dir / "cache" / "CIFAR10" / "cifar-10-batches-py"
    if (dst / "test_batch").exists():
        return
    py = REPO / ".venv" / "bin" / "python"
    r = subprocess.run([str(py if py.exists() else sys.executable), "-m", "wmask", "data", "cifar10", "--data-dir",
                        str(data_dir), "--write-batches", str(dst)], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        hint = (f" (wmask's own environment is needed for this step: `make setup` in {REPO}, or run run.py with "
                "the python that has wmask installed)" if not py.exists() else "")
        raise UserError(f"writing CIFAR-10 batches for their code failed: "
                        f"{(r.stderr.strip().splitlines() or ['?'])[-1]}{hint}")


def _cifar10_phases(flags: list[str], seed_dir: Path) -> list[tuple]:
    """Their CIFAR-10 run as two invocations of their main.py, so that each fits a work period: the base network
    alone (``-analysis.enable 0``: no mask stages; their main.py saves it to ``model_weights/model.pth``), then the
    11 mask stages on it through their own ``-restore_pretrained DIR`` (which reads ``DIR/<sweep id 0>/model.pth``
    and, with ``-test_pretrained 1``, logs its validation as ``load_validation/...``). The same computation as one
    invocation, except that the mask stages start from a fresh seeding of torch's random state, not from where the
    base training left it."""
    name = flag(flags, "-name")
    base = [*flags, "-analysis.enable", "0"]
    base[base.index("-name") + 1] = f"{name}_base"
    pretrained = seed_dir / "pretrained"

    def copy_base(d: Path):
        src = d / "save" / f"{name}_base" / "model_weights" / "model.pth"
        if not src.is_file():
            raise RunError(f"the base phase left no {src}")
        (pretrained / "0").mkdir(parents=True, exist_ok=True)
        (pretrained / "0" / "model.pth").write_bytes(src.read_bytes())
    masks = [*flags, "-restore_pretrained", str(pretrained), "-test_pretrained", "1"]
    return [("base", base, None), ("masks", masks, copy_base)]


EXPERIMENTS = {
    "addmul": {"flags": _addmul_flags, "network": "fnn"},
    "double_addition": {"flags": _double_addition_flags, "network": "fnn"},
    "scan": {"flags": _scan_flags, "network": "lstm", "prepare": _prepare_scan},
    "cifar10": {"flags": _cifar10_flags, "network": "cnn", "prepare": _prepare_cifar10, "phases": _cifar10_phases},
}

# --smoke: the same code paths in about a minute (never written to the results folder unless asked)
# The overrides of our cpu preset at which the authors' code was run: the preset has changed since (SCAN's masks may
# now take up to 24,000 steps), the committed runs of their code have not.
OURS = {"scan": {"mask.steps": 8000}}
SMOKE_OVERRIDES = {"-stop_after": "200", "-step_per_mask": "100", "-test_interval": "100"}
SMOKE_OVERRIDES_SCAN = {"-stop_after": "100", "-step_per_mask": "50", "-test_interval": "100"}
SMOKE_OVERRIDES_CIFAR = {"-stop_after": "100", "-step_per_mask": "20", "-test_interval": "100"}


def build_flags(experiment: str, seed: int, smoke: bool) -> list[str]:
    flags = EXPERIMENTS[experiment]["flags"](seed)
    if smoke:
        over = {"scan": SMOKE_OVERRIDES_SCAN, "cifar10": SMOKE_OVERRIDES_CIFAR}.get(experiment, SMOKE_OVERRIDES)
        for i in range(0, len(flags), 2):
            if flags[i] in over:
                flags[i + 1] = over[flags[i]]
        flags[1] = flags[1] + "_smoke"
    return flags


def flag(flags: list[str], name: str) -> str:
    return flags[flags.index(name) + 1]


MAPPING_NOTES = {
    "addmul": {
        "full": "validation/{add,mul}/accuracy at the last base step (no masks)",
        "control, +, ×": "analyzer/{verify,add,mul}/validation/{add,mul}/accuracy, the last periodic validation of "
                         "the stage (every 1,000 steps; deterministic mask logit >= 0)",
        "¬control, ¬+, ¬×": "inverse_mask_test/{verify,add,mul}/{add,mul}/accuracy (NOT(logit > 0), biases kept)",
        "test sets": "their 10k-example valid set (RandomState(0x12345678 + 2)) restricted to + or ×",
        "layers": "export/stage_final_masks/stage_{0,1,2}/layers_<j>_weight.pth -> our <2j>.weight; IoU/IoMin of "
                  "stage 1 (+) vs stage 2 (×) on logit > 0 as their paper/plot_addmul_iou.py; 'total' pools counts",
        "sharing": "from the exported masks with our definition (sum |m+ & m×| / sum |m+|); their own logged "
                   "mask_stat/all/shared_i divides by the union instead (kept in their_logged_mask_stat)",
    },
    "scan": {
        "full": "validation/{iid,jump,length,turn_left}/accuracy/total at the last base step (their greedy decoder "
                "applies embedding dropout 0.5 here: F.dropout without training=, see README)",
        "mask <split>": "analysis_results/{simple,jump,length,turn_left}/<test>/accuracy/total at the end of each "
                        "stage (dropout set to 0 for mask training and evaluation)",
        "tests": "their whole test files (iid = simple test 4,182, jump 7,706, length 3,920, turn_left 1,208 lines); "
                 "ours: 1,000 lines of each, drawn with the seed",
        "removed": "decoder_output_projection_weight rows, 100 |m_simple & ~m_split| / |m_simple| (Fig. 4b)",
    },
    "cifar10": {
        "base": "validation/iid/accuracy at the last base step (their valid split: the training images where "
                "RandomState(0xC1CAFA52).rand(50000) <= 0.2, about 10k; ours: a seeded 80/20 split of the same "
                "50k images, which both codes read from the same pickled batches)",
        "drops, worst": "export/class_removal/confusion_reference.pth (the control mask's confusion, [true, "
                        "predicted], normalised per true class) and confusion_difference/<class>.pth (the mask "
                        "without <class> minus it), at the end of each stage, on their valid split; relative drop "
                        "and worst-other ratio by our wmask.metrics.relative_drop / worst_other_ratio",
        "kept": "export/stage_final_masks/stage_<s>/<tensor>.pth, logit > 0: stage 0 the control mask, stage c+1 "
                "the mask without class c",
    },
    "double_addition": {
        "full": "validation/iid/accuracy/tuple/{0,1} at the last base step",
        "control, pair 1, pair 2": "final_accuracy/{0,1,2}/iid/accuracy/tuple/{0,1} (end of each stage, both pairs)",
        "¬control, ¬pair 1, ¬pair 2": "inverse_mask_test/split_{0,1,2}/iid/accuracy/tuple/{0,1} (plain inversion, "
                                      "-inv_mask_exclude_io none; our '(I/O kept)' rows have no counterpart)",
        "layers": "IoU/IoMin of stage 1 (pair 1) vs stage 2 (pair 2) on logit > 0 as their paper/plot_tuple_iou.py",
    },
}
