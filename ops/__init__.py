"""Operations: the `mlops` command and the local tooling around the loop (demo, stack, traffic
simulator, status, local servers). It sits above every room, so its imports only run downward."""
