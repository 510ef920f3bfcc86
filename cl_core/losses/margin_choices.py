"""The choices the margin losses (triplet, pairwise contrastive) take, kept free of torch so the
config validation reads them without loading the losses."""

DISTANCES = ("cosine", "euclidean")
MINING = (None, "batch_hard", "semi_hard")
