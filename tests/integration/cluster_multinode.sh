: # multi-node part: filled in below
