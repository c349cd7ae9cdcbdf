"""Train and evaluate a sequential recommender.

    python train.py --config configs/sasrec-ml100k.yaml --data-dir ../shared/data/ml-100k
    accelerate launch train.py --config configs/sasrec-ml1m.yaml --data-dir ../shared/data/ml-1m
    python train.py --config configs/sasrec-ml1m.yaml training.num_epochs=3 --resume
"""

from hf_rec.training import main

if __name__ == "__main__":
    main()
