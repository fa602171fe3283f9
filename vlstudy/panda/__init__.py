"""Panda-70M (Chen et al., CVPR 2024) in the kit: splitting, LPIPS, caption selection and the student captioner."""
