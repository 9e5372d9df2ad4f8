"""The reference's five test option files and its training options file, verbatim, as data for the option tests."""

# The reference's test option files, verbatim (grrrute/mr-sampler,
# universal-image-restoration/config/daclip-sde/options/*.yml).
REFERENCE_OPTION_FILES = {
    "test.yml": """\
name: universal-ir # experiment dir name
suffix: ~  # add suffix to saved images
model: denoising
distortion: [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted] # uncompleted means inpainting
gpu_ids: [0]

sde:
  max_sigma: 50
  T: 100
  schedule: cosine # linear, cosine
  eps: 0.005
  algorithm: mrsampler # sde or posterior or mrsampler or heun, sde means euler descritization
  
degradation:
  # for denoising
  sigma: 25
  noise_type: G # Gaussian noise: G

  # for super-resolution
  scale: 4

datasets:
  test1:
   name: deg_type # choose from [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted]
   mode: LQGT
   dataroot_GT: your/path/to/dataset/deg_type/GT
   dataroot_LQ: your/path/to/dataset/deg_type/LQ
  
#### network structures
network_G:
  which_model_G: ConditionalUNet
  setting:
    in_nc: 3
    out_nc: 3
    nf: 64
    ch_mult: [1, 2, 4, 8]
    context_dim: 512
    use_degra_context: true
    use_image_context: true

#### pretrained model path
path:
  pretrain_model_G: your/path/to/pretrained_models/universal-ir.pth
  daclip: your/path/to/pretrained_models/daclip_ViT-B-32.pt

#### configs for sampler
sampler:
  num_sample_steps: 20
  solver_type: sde # sde or ode
  parameterization: "data"
  order: 2
  fit_target: noise
  lambda_min: -5.0
  time_schedule: linear-lambda
  thresholding: False # only for data prediction
  threshold_ratio: 0.995
  threshold_max: 1.5
  denoise_last: False
""",
    "mrsampler.yml": """\
name: mrsampler # experiment dir name
suffix: ~  # add suffix to saved images
model: denoising
distortion: [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted] # uncompleted means inpainting
gpu_ids: [0]

sde:
  max_sigma: 50
  T: 100
  schedule: cosine # linear, cosine
  eps: 0.005
  algorithm: mrsampler # sde or posterior or mrsampler or heun, sde means euler descritization
  
degradation:
  # for denoising
  sigma: 25
  noise_type: G # Gaussian noise: G

  # for super-resolution
  scale: 4

datasets:
  test1:
   name: uncompleted # choose from [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted]
   mode: LQGT
   dataroot_GT: your/path/to/dataset/uncompleted/GT
   dataroot_LQ: your/path/to/dataset/uncompleted/LQ
  
#### network structures
network_G:
  which_model_G: ConditionalUNet
  setting:
    in_nc: 3
    out_nc: 3
    nf: 64
    ch_mult: [1, 2, 4, 8]
    context_dim: 512
    use_degra_context: true
    use_image_context: true

#### pretrained model path
path:
  pretrain_model_G: your/path/to/pretrained_models/universal-ir.pth
  daclip: your/path/to/pretrained_models/daclip_ViT-B-32.pt

#### configs for sampler
sampler:
  num_sample_steps: 20
  solver_type: ode # sde or ode
  parameterization: "data"
  order: 2
  fit_target: noise
  lambda_min: -5.0
  time_schedule: linspace
  thresholding: False # only for data prediction
  threshold_ratio: 0.995
  threshold_max: 1.5
  denoise_last: False
""",
    "posterior.yml": """\
name: universal-ir # experiment dir name
suffix: ~  # add suffix to saved images
model: denoising
distortion: [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted] # uncompleted means inpainting
gpu_ids: [0]

sde:
  max_sigma: 50
  T: 100
  schedule: cosine # linear, cosine
  eps: 0.005
  algorithm: posterior # sde or posterior or mrsampler or heun, sde means euler descritization
  
degradation:
  # for denoising
  sigma: 25
  noise_type: G # Gaussian noise: G

  # for super-resolution
  scale: 4

datasets:
  test1:
   name: motion-blurry # choose from [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted]
   mode: LQGT
   dataroot_GT: your/path/to/dataset/motion-blurry/GT
   dataroot_LQ: your/path/to/dataset/motion-blurry/LQ
  
#### network structures
network_G:
  which_model_G: ConditionalUNet
  setting:
    in_nc: 3
    out_nc: 3
    nf: 64
    ch_mult: [1, 2, 4, 8]
    context_dim: 512
    use_degra_context: true
    use_image_context: true

#### pretrained model path
path:
  pretrain_model_G: your/path/to/pretrained_models/universal-ir.pth
  daclip: your/path/to/pretrained_models/daclip_ViT-B-32.pt

#### configs for sampler
sampler:
  num_sample_steps: 100
  solver_type: sde # sde or ode
  parameterization: "data"
  order: 2
  fit_target: noise
  lambda_min: -5.0
  time_schedule: linear-lambda
  thresholding: False # only for data prediction
  threshold_ratio: 0.995
  threshold_max: 1.5
  denoise_last: False
""",
    "euler.yml": """\
name: universal-ir # experiment dir name
suffix: ~  # add suffix to saved images
model: denoising
distortion: [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted] # uncompleted means inpainting
gpu_ids: [0]

sde:
  max_sigma: 50
  T: 100
  schedule: cosine # linear, cosine
  eps: 0.005
  algorithm: sde # sde or posterior or mrsampler or heun, sde means euler descritization
  
degradation:
  # for denoising
  sigma: 25
  noise_type: G # Gaussian noise: G

  # for super-resolution
  scale: 4

datasets:
  test1:
   name: motion-blurry # choose from [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted]
   mode: LQGT
   dataroot_GT: your/path/to/dataset/motion-blurry/GT
   dataroot_LQ: your/path/to/dataset/motion-blurry/LQ
  
#### network structures
network_G:
  which_model_G: ConditionalUNet
  setting:
    in_nc: 3
    out_nc: 3
    nf: 64
    ch_mult: [1, 2, 4, 8]
    context_dim: 512
    use_degra_context: true
    use_image_context: true

#### pretrained model path
path:
  pretrain_model_G: your/path/to/pretrained_models/universal-ir.pth
  daclip: your/path/to/pretrained_models/daclip_ViT-B-32.pt

#### configs for sampler
sampler:
  num_sample_steps: 100
  solver_type: sde # sde or ode
  parameterization: "data"
  order: 2
  fit_target: noise
  lambda_min: -5.0
  time_schedule: linear-lambda
  thresholding: False # only for data prediction
  threshold_ratio: 0.995
  threshold_max: 1.5
  denoise_last: False
""",
    "heun.yml": """\
name: universal-ir-heun # experiment dir name, universal-ir-mrsampler or universal-ir
suffix: ~  # add suffix to saved images
model: denoising
distortion: [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted] # uncompleted means inpainting
gpu_ids: [0]

sde:
  max_sigma: 50
  T: 100
  schedule: cosine # linear, cosine
  eps: 0.005
  algorithm: heun # sde or posterior or mrsampler or heun
  
degradation:
  # for denoising
  sigma: 25
  noise_type: G # Gaussian noise: G

  # for super-resolution
  scale: 4

datasets:
  test1:
   name: uncompleted
   mode: LQGT
   dataroot_GT: /mnt/intern/zhejing.la/data/4_daclip/daclip-val/uncompleted/GT
   dataroot_LQ: /mnt/intern/zhejing.la/data/4_daclip/daclip-val/uncompleted/LQ
  
#### network structures
network_G:
  which_model_G: ConditionalUNet
  setting:
    in_nc: 3
    out_nc: 3
    nf: 64
    ch_mult: [1, 2, 4, 8]
    context_dim: 512
    use_degra_context: true
    use_image_context: true

#### pretrained model path
path:
  pretrain_model_G: /mnt/intern/zhejing.la/data/4_daclip/universal-ir.pth
  daclip: /mnt/intern/zhejing.la/data/4_daclip/daclip_ViT-B-32.pt

sampler:
  num_sample_steps: 100
  solver_type: sde # sde or ode
  parameterization: "data"
  order: 2
  fit_target: noise
  lambda_min: -5.0
  time_schedule: linspace
  thresholding: False # only for data prediction
  threshold_ratio: 0.995
  threshold_max: 1.5
  denoise_last: False
""",
}

# The reference's training options (grrrute/mr-sampler,
# universal-image-restoration/config/daclip-sde/options/train.yml), verbatim.
REFERENCE_TRAIN_YML = """\
#### general settings
name: universal-ir
use_tb_logger: true
model: denoising
distortion: [motion-blurry,hazy,jpeg-compressed,low-light,noisy,raindrop,rainy,shadowed,snowy,uncompleted]
gpu_ids: [0]

sde:
  max_sigma: 50
  T: 100
  schedule: cosine # linear, cosine
  eps: 0.005

degradation: # for some synthetic dataset that only have GTs
  # for denoising
  sigma: 25
  noise_type: G # Gaussian noise: G

  # for super-resolution
  scale: 4
  
#### datasets
datasets:
  train:
    name: Train_Dataset
    mode: MD
    dataroot: datasets/universal/train

    use_shuffle: true
    n_workers: 16  # per GPU
    batch_size: 16
    patch_size: 256
    use_flip: true
    use_rot: true
    color: RGB
  val:
    name: Val_Dataset
    mode: MD
    dataroot: datasets/universal/val


#### network structures
network_G:
  which_model_G: ConditionalUNet
  setting:
    in_nc: 3
    out_nc: 3
    nf: 64
    ch_mult: [1, 2, 4, 8]
    context_dim: 512
    use_degra_context: true
    use_image_context: true

#### path
path:
  pretrain_model_G: ~
  strict_load: true
  resume_state: ~
  daclip: pretrained/daclip_ViT-B-32.pt

#### training settings: learning rate scheme, loss
train:
  optimizer: AdamW # Adam, AdamW, Lion
  lr_G: !!float 2e-4
  lr_scheme: TrueCosineAnnealingLR # MultiStepLR
  beta1: 0.9
  beta2: 0.99
  niter: 700000
  warmup_iter: -1  # no warm up
  lr_steps: [200000, 400000, 600000]
  lr_gamma: 0.5
  eta_min: !!float 1e-6

  # criterion
  is_weighted: False
  loss_type: l1
  weight: 1.0

  manual_seed: 0
  val_freq: !!float 1e4

#### logger
logger:
  print_freq: 200
  save_checkpoint_freq: !!float 1e4
"""
