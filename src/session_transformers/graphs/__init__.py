"""Sessions as torch_geometric graphs."""
