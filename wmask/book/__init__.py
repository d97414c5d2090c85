"""What serves the book: the paper's claims and their checks, the settling projections, the authors' code beside
ours, and loading a committed run for a chapter. It reads summaries and tables; it computes no result, so editing it
leaves every stored artefact reusable (:mod:`wmask.experiments.fingerprint`)."""
