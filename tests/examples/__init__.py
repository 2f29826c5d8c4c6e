"""The examples users run or copy: the C example and the trained example."""
