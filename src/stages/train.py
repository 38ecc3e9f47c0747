"""train: for one cross-validation fold, fit `train.members` classifiers (from successive seeds) on the training
clips of the corpora in `train.corpora`, keep for each the weights with the best validation score on those
corpora, and save them as one self-contained bundle (weights, model config, labels, front-end settings).

With `train.processes` above 1 it runs itself that many times under torchrun (data-parallel: ser.distributed);
started by torchrun, it joins the processes torchrun started. Rank 0 writes the outputs."""

import dataclasses
import sys

from ser.bundle import save_bundle
from ser.corpora import EMOTIONS
from ser.device import pick_device
from ser.distributed import launched_by_torchrun, process_group, relaunch, same_weights_on_every_rank
from ser.features import load_frontend, load_training_data
from ser.io import read_table, write_csv, write_json
from ser.live import live_log
from ser.model import ModelConfig, count_parameters
from ser.normalise import normalise_split
from ser.params import ModelParams, TrainParams, load_section, naming
from ser.plots import training_curves
from ser.stage import run, stage_args
from ser.train import check_choices, train_ensemble, train_metrics


def main(argv=None) -> None:
    args = stage_args(__doc__, ["features", "split", "model", "history", "curves", "metrics", "live"], argv, fold=True)
    model_params = load_section(args.params, "model", ModelParams)
    params = load_section(args.params, "train", TrainParams)
    check_choices(model_params, params, str(args.params))
    if params.processes > 1 and not launched_by_torchrun():
        sys.exit(relaunch(params.processes, __file__, sys.argv[1:] if argv is None else argv))
    frontend = load_frontend(args.features)
    config = ModelConfig.from_preset(model_params.size, frontend.melspec.n_mels, frontend.n_frames, len(EMOTIONS))
    split = read_table(args.split)
    with naming(args.params):  # train.corpora against the split; a feature store's own errors name it
        train, val = load_training_data(args.features, split, args.fold, params.corpora)
    train, val = normalise_split(train, params.normalise), normalise_split(val, params.normalise)
    device = pick_device()
    with process_group(device) as ranks:
        if ranks.main:
            print(
                f"train: fold {args.fold}: {len(train.table)} training clips of {', '.join(params.corpora)}; "
                f"{len(val.table)} validation clips of every corpus; {ranks.world_size} process(es)"
            )
        # naming: train.batch_size against the rows an epoch draws
        with live_log(args.live if ranks.main else None) as on_epoch, naming(args.params):
            result = train_ensemble(train, val, config, params, device, ranks, frontend, on_epoch)
        digest = same_weights_on_every_rank(result.model, ranks)
    if not ranks.main:
        return
    if ranks.distributed:
        print(f"train: all {ranks.world_size} processes hold the same weights (sha256 {digest[:16]})")
    summary = {
        "fold": args.fold,
        "model_size": model_params.size,
        "corpora": list(params.corpora),
        "parameters": count_parameters(result.model),  # all members together
        "members": {str(index + 1): member.summary(params) for index, member in enumerate(result.members)},
        "val": result.val,  # of the model as saved: the mean of the members' probabilities
        "train_minutes": round(result.seconds / 60, 2),
        "train_clips_per_s": round(result.train_clips_per_s, 1),
        "device": device.type,
        "processes": ranks.world_size,
    }
    info = {"train": dataclasses.asdict(params), **summary}
    save_bundle(args.model, result.model, frontend, info)
    write_csv(result.history.round(5), args.history)
    training_curves(result.history, args.curves)
    write_json(train_metrics(summary, params), args.metrics)
    kept = "; ".join(f"member {index}: {member['weights']}" for index, member in summary["members"].items())
    val_uas = ", ".join(f"{name} {scores['ua']:.3f}" for name, scores in result.val.items())
    print(f"train: fold {args.fold}: kept {kept}; validation UA {val_uas}; {summary['train_minutes']} min")


if __name__ == "__main__":
    run(main)
