"""Reference CoSOD models (GCoNet, RCGS) with one shared trainer and predictor; needs the ``models`` extra (torch)."""
