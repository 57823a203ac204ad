"""The latents layer: the on-disk latent store, the encode pipeline, latent cells, encoding on a Dask cluster."""
