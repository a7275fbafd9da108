namespace BlockAttention;
