# %% [markdown]
# # CNN theory: architectures, transfer learning and deployment
#
# Six written questions on the ideas behind the networks of this course: why convolutions suit
# images, what LeNet-5, AlexNet, VGG and ResNet contributed, how to reuse a pretrained network
# when labels are scarce, and how to choose and deploy a model for a real clinical task.
#
# Answer each question in its own cell, in your own words, in a paragraph or two (roughly 40 to
# 220 words; the last question up to about 260). Explain *why*, not only *what*: a list of terms
# is not an answer. Nothing here runs code.
#
# The grader suggests a score for each answer from the course's criteria and your instructor
# confirms it; answers it is unsure about, and answers that repeat the question, list keywords,
# pad, contradict themselves or copy someone else's, always go to your instructor.

# %% [markdown]
# ## 1. Convolutional versus fully connected networks
#
# Why do convolutional neural networks work better on images than fully connected networks?
# Explain the architectural ideas behind the difference.

# %% answer id=cnn_vs_fc
# Images have spatial structure and a fully connected layer throws it away: it flattens the
# picture and gives every pixel its own weight to every neuron. A convolution instead uses small
# kernels, for example 3x3, that only look at a local neighbourhood, and the same kernel is
# reused at all positions. So a 3x3 filter on an RGB image has 27 weights, while one dense
# neuron on a 224x224x3 input already has about 150,000. Fewer parameters means less overfitting
# and less compute. Because the kernel is shared, an edge detector finds edges anywhere in the
# image (translation equivariance), and deeper layers combine these simple features into more
# complex ones.

# %% [markdown]
# ## 2. LeNet-5 and its legacy
#
# Describe LeNet-5: what did it look like and what task was it built for? Which of its ideas are
# still used in today's CNNs, and what has changed since?

# %% answer id=lenet5_legacy
# LeNet-5 (LeCun et al., 1998) was one of the first successful convolutional networks and was
# used to recognize handwritten digits on cheques in banks. The structure is conv 5x5 with 6
# maps, subsampling, conv 5x5 with 16 maps, subsampling, and then fully connected layers with
# 120 and 84 neurons before the 10 outputs; it used tanh/sigmoid-like activations. Modern
# networks still follow the same idea of alternating convolution and pooling so that features
# get more abstract layer by layer, and they are still trained with gradient descent and
# backpropagation through all layers. The differences: ReLU activations, max pooling, batch
# normalization, dropout, and far bigger networks trained on GPUs with millions of images.

# %% [markdown]
# ## 3. AlexNet versus VGG
#
# Compare AlexNet and VGG. What characterizes each design, and why does VGG's way of building
# the network work well?

# %% answer id=alexnet_vs_vgg
# AlexNet has 8 weight layers (5 conv + 3 FC), starts with large kernels (11x11 stride 4, then
# 5x5), and was the network that popularized ReLU, dropout and GPU training when it won ImageNet
# in 2012. VGG from Oxford (2014) is deeper, 16 or 19 layers, but very regular: every conv is
# 3x3 with stride 1, in blocks followed by 2x2 max pooling. The reason this works is that a
# stack of three 3x3 convs has the receptive field of a 7x7 conv but fewer weights (27C^2 vs
# 49C^2) and three non-linearities instead of one. On the other hand VGG is huge, about 138
# million parameters, most of them in the first fully connected layer, so it is expensive in
# memory and compute.

# %% [markdown]
# ## 4. Transfer learning with limited data
#
# You have only a few hundred labelled images for a new classification task. How would you use
# transfer learning, and how do you decide how much of the pretrained network to retrain?

# %% answer id=transfer_learning
# I would use a model pretrained on a big dataset like ImageNet, since the lower layers learn
# general features like edges and textures that also work for my images, and a few hundred
# images are far too few to learn them from scratch. With this little data I would freeze the
# pretrained layers and only train a new final classifier for my classes (feature extraction).
# How much to retrain depends on the amount of data and how similar my images are to ImageNet:
# with more data, or very different images like X-rays, I would unfreeze the top convolutional
# blocks and fine-tune them with a small learning rate. Unfreezing too much with little data
# leads to overfitting, so I would check the validation accuracy and use augmentation.

# %% [markdown]
# ## 5. Residual connections and vanishing gradients
#
# What is a residual connection in ResNet, and how does it help with vanishing gradients when
# training very deep networks?

# %% answer id=residual_connections
# A residual connection (skip connection) takes the input of a block and adds it to the block's
# output, so the block computes F(x) + x instead of a new H(x). The layers then learn the
# residual F(x) = H(x) - x, which is easy to push to zero when the block should just pass its
# input on. For the gradients, the derivative of x + F(x) with respect to x is 1 + dF/dx, so
# there is always a direct path back to the early layers and the gradient does not vanish after
# many multiplications. Without skips, deeper plain networks actually had higher training error
# than shallower ones (the degradation problem); with them ResNet could go to 50, 101 and 152
# layers.

# %% [markdown]
# ## 6. X-ray triage: choosing an approach and deploying it
#
# A hospital wants a CNN to triage chest X-rays so that urgent cases are read first, but only a
# small labelled set exists and urgent cases are rare. Which approach would you choose, how
# would you evaluate it, and how should it be deployed?

# %% answer id=xray_triage
# With few labels I would use transfer learning: take a pretrained CNN such as a DenseNet or
# ResNet, ideally pretrained on a large chest X-ray dataset, replace the classifier and fine-tune
# it with augmentation. Because urgent cases are rare I would use class weights or oversample
# them. For evaluation, accuracy is misleading with this imbalance, so I would report
# recall (sensitivity) and precision for the urgent class, the confusion matrix and the ROC
# curve, and choose the threshold so that sensitivity is very high, accepting more false
# positives. Deployment: the model only sorts the worklist so urgent-looking scans are read
# first, and the radiologist still reads every image and makes the decision. I would first
# validate it on data from the target hospital and then monitor its performance for dataset
# shift, e.g. a new scanner.
