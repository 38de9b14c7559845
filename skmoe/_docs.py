"""Parameter and attribute sections shared by the two estimators' docstrings."""

COMMON_PARAMS_DOC = """
    n_experts : int, default=4
        Number of experts (L in the paper). Each row is served by one expert
        (two with ``router="learned", top_k=2``).
    expert_depth : int, default=2
        Hidden layers per expert (J). ``0`` gives linear experts.
    expert_width : int, default=128
        Units per hidden layer (W).
    expert_members : int, default=8
        Makes each expert a parameter-efficient ensemble of this many MLPs
        (as in TabM-mini): the members share the hidden layers, differ by a
        learned scale of the inputs and by their output layers, each learns
        with its own loss, and the expert predicts their mean. A row still
        runs through one expert, whose cost grows with the members.
    prelu : bool, default=True
        Learnable PReLU activations when True, ReLU when False.
    router : {"voronoi", "learned"}, default="voronoi"
        ``"voronoi"``: the MoMLP of Kratsios et al.; prototypes are fitted by
        k-means on the preprocessed inputs and each row goes to the expert of
        its nearest prototype. ``"learned"``: a linear gate trained with the
        experts, balanced by the auxiliary-loss-free bias of DeepSeek-V3.
    voronoi_search : {"auto", "exact", "tree"}, default="auto"
        How a row finds its nearest prototype with ``router="voronoi"``.
        ``"exact"`` compares it with every prototype; ``"tree"`` descends a
        two-level tree of prototypes (about ``2 * sqrt(n_experts)``
        comparisons), built so that every training row gets its exact nearest
        prototype; new rows near a cell boundary may get a neighbouring one.
        ``"auto"`` uses the tree from 256 experts on, where it measured
        faster than the exhaustive search (``docs/benchmarks.md``). Training
        and prediction always route the same way.
    top_k : {1, 2}, default=1
        Experts per row with ``router="learned"``; must be 1 for Voronoi.
    categorical_features : "from_dtype", array-like of str, int or bool, or None, \
            default="from_dtype"
        Columns encoded as categories. ``"from_dtype"``: the pandas
        ``category``, ``object``, ``string`` and ``bool`` columns of a
        DataFrame (none for arrays); a list of column names or indices, or a
        boolean mask; ``None`` for none. Levels seen at least 5 times get
        their own one-hot slot (up to the 64 most frequent of a column, which
        is then also target-encoded); missing values are a level of their
        own; rare and unseen levels share an ``other`` slot.
    numeric_bins : int, default=64
        Each numeric column is given to the network in three views: robust
        scaled, quantile-normalised, and a piecewise-linear encoding over
        this many quantile bins (``numeric_bins`` numbers in [0, 1] per
        column; Gorishniy et al., NeurIPS 2022). ``0`` leaves the third view
        out. The bins let an expert bend a column's effect at every bin edge;
        they widen the experts' input (and the routing space) by
        ``numeric_bins`` per numeric column. A small table gets fewer bins
        (``encoder_.numeric_.n_bins_``), so that no bin is learned from a
        handful of rows: one per 32 distinct training rows up to 32 bins,
        and one per 64 rows beyond them (64 bins from 4,096 rows). A value
        holding more than one bin's share of the rows (zeros of a
        mostly-zero amount, a sentinel) ends one bin, and the other bins
        fall at quantiles of the remaining values.
    learning_rate : float, default=2e-3
        AdamW learning rate (the peak rate with ``lr_schedule="cosine"``).
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"constant"``: the same rate throughout, each phase (and each
        expert) stopping after ``n_iter_no_change`` epochs without
        improvement. ``"cosine"``: within each phase the rate decays from
        ``learning_rate`` to zero along half a cosine over ``max_epochs``
        epochs, so that a fixed budget of epochs ends on small steps; early
        stopping still keeps the best validation epoch (and may end a phase
        sooner).
    weight_averaging : float, default=2.0
        Time constant, in epochs, of an exponential moving average of the
        weights: after every optimizer step the average moves
        ``1 / (weight_averaging * steps per epoch)`` of the way towards the
        trained weights, and validation, early stopping and the fitted model
        use the average (in every phase and every expert). It smooths the
        noise of the last minibatch steps without a fixed budget of epochs;
        with it the accuracy suite's mean normalised score rose from 0.847 to
        0.883 (``docs/benchmarks.md``). ``0`` keeps the trained weights
        themselves (models fitted before this parameter existed).
    batch_size : int or "auto", default="auto"
        Rows per minibatch (per expert during specialisation). ``"auto"`` is
        a power of two near ``n_samples / 16`` between 32 and 256, so that
        small tables still get about 16 steps per epoch.
    max_epochs : int, default=200
        Maximum passes over the training rows in each training phase (shared,
        then specialise). An epoch is one pass, except on tables of more than
        65,536 training rows: there an epoch is 65,536 rows of training, so
        that early stopping checks the validation loss as often on a million
        rows as on the largest tables that fit in one such epoch, and
        ``n_iter_no_change``, ``checkpoint_every``, ``n_iter_``,
        ``best_epoch_`` and ``history_`` count these epochs;
        ``max_epochs`` still bounds whole passes.
    weight_decay : float, default=1e-4
        Decoupled (AdamW) weight decay.
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the rows (or use ``X_val``) and
        keep the weights of the best validation epoch; with Voronoi routing
        each expert stops on its own cell. ``"auto"`` enables it from 1,000
        distinct training rows or when ``X_val`` is passed to ``fit``.
    validation_fraction : float or "auto", default="auto"
        Share of the training rows held out for early stopping. ``"auto"``
        holds out 10% of them, at most 32,768 rows (from 327,680 rows on),
        so that large tables train on more of their rows and an epoch does
        not spend a third of its time on validation.
    n_iter_no_change : int, default=10
        Epochs without improvement before a phase (or an expert) stops (on
        large tables, epochs of 65,536 rows; see ``max_epochs``). The
        averaged weights (``weight_averaging``) improve smoothly, so a short
        patience ends training without stopping at a chance plateau: with
        ``weight_averaging=0`` a patience of 10 lost accuracy on the suite,
        with it none (``docs/benchmarks.md``).
    refit : bool or "auto", default="auto"
        After early stopping, fit the mixture again on all rows, the held-out
        validation rows included, for the epochs early stopping chose: the
        shared phase for its best epoch count, each expert for its own. The
        refit keeps the first fit's encoding and routing, draws its initial
        weights from the same seed and checks nothing on held-out rows. It
        raised every table of the accuracy suite (``docs/benchmarks.md``).
        Since the first fit then only chooses epochs, it runs fewer members
        (``probe_members``): the two fits together took 0.70-1.17x the time
        of one early-stopped fit of all members on the suite's tables
        (1.3-1.9x with ``probe_members=None``).
        ``history_`` records both fits, the refit's phases as ``"refit
        shared"`` and ``"refit specialise"``, and ``best_epoch_`` counts the
        refit's epochs. ``"auto"`` refits when rows were held out from ``X``
        and they are at least 5% of the rows (with the ``"auto"`` split, up
        to 655,360 rows): not with ``X_val``, not in a warm start that grows
        the model, not on a table too small for early stopping. ``True``
        refits wherever rows were held out and raises with
        ``early_stopping=False``, ``X_val`` or a growing warm start.
    probe_members : int or None, default=2
        Members per expert of the early-stopped fit that a refit follows.
        That fit only chooses the refit's epochs, and the refit runs all
        ``expert_members``; with 2 members instead of 8 the early-stopped fit
        costs about a third (``docs/benchmarks.md``). Its validation losses
        are those in ``history_`` and ``validation_scores_``. ``None`` runs
        all members in both fits. Unused without a refit, and with
        ``checkpoint_dir`` (checkpoints are models a warm start resumes, so
        they have all members). Should the refit fail (interrupted, or its
        loss non-finite), the model is the early-stopped fit, with its
        ``probe_members`` members per expert, and a warning says so.
    warm_start : bool, default=False
        When True and the estimator is fitted, ``fit`` goes on from the fitted
        model instead of starting over: if ``n_experts`` was raised, the
        busiest experts are split (each half starts as a copy of its expert)
        until there are ``n_experts``, then the experts train further on the
        new data, each keeping its current weights unless training beats them
        on its validation rows. The input encoding, the target scaling and the
        architecture (``router``, ``top_k``, ``expert_depth``,
        ``expert_width``, ``prelu``) are those of the first fit.
    checkpoint_dir : str, path-like or None, default=None
        Folder to which the best weights so far are saved every
        ``checkpoint_every`` epochs, as a model :func:`skmoe.load` reads. To
        resume after a crash, fit again with ``warm_start=True`` and the same
        ``checkpoint_dir``: an unfitted estimator then starts from the saved
        model and trains further (with fresh optimizer state, so the result is
        not bit-identical to an uninterrupted fit). The refit on all rows
        (``refit``) writes no checkpoints while it runs, only the final
        model once it ends; a crash during it leaves the early-stopped
        fit's last checkpoint.
    checkpoint_every : int, default=10
        Epochs between checkpoints. When the experts train in parallel
        (``n_jobs``, Dask), a checkpoint is written each time a group of
        experts finishes instead.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the k-means prototypes, the initial
        weights and the shuffling. On the CPU, the same seed gives the same
        model.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``.
    n_threads : int or None, default=None
        CPU threads for torch's kernels during ``fit`` and prediction.
        ``None`` leaves torch's own setting, which already respects
        ``threadpoolctl`` limits and ``OMP_NUM_THREADS``: in the worker
        processes of ``GridSearchCV(n_jobs=k)`` or ``cross_val_score(n_jobs=k)``
        joblib sets it to ``n_cpus // k``, so parallel fits do not oversubscribe
        the CPU. The fitted model does not depend on it (bit for bit on
        the CPU).
    n_jobs : int or None, default=None
        Parallel jobs for training the experts of ``router="voronoi"`` once
        the router is fitted: the experts are independent, so they are split
        into groups that joblib runs side by side. ``None`` means 1 unless in
        a :func:`joblib.parallel_backend` context, so that inside
        ``with joblib.parallel_backend("dask"):`` the groups run on the
        workers of a Dask cluster (see :doc:`/scaling`); ``-1`` uses all
        processors. The fitted model does not depend on it (bit for bit on
        the CPU). Ignored by ``router="learned"``, whose router trains
        jointly with the experts.
    autocast : bool or "auto", default="auto"
        Train with bfloat16 matrix products (``torch.autocast``): the
        products' operands are rounded to bfloat16, and so are the hidden
        activations after the first PReLU (which autocast also runs in
        bfloat16), while the weights, their gradients, the optimizer and the
        losses stay float32. ``"auto"`` does so where the device has bfloat16 matrix
        instructions (x86 CPUs with AVX512-BF16 or AMX, CUDA GPUs from
        Ampere on), where a training step runs at 1.4-1.8x the float32 rate
        on 2 CPU cores, and trains in float32 elsewhere (where bfloat16 is
        emulated, and slower). ``True`` asks for bfloat16 on any CPU or CUDA
        device, ``False`` for float32 everywhere. Early stopping judges,
        routing and prediction always run in float32. The accuracy
        difference is measured in ``docs/benchmarks.md``; the same
        ``random_state`` on the same machine gives the same model either way.
    verbose : int, default=0
        0 is silent; 1 prints one line per epoch (phase, train and validation
        loss, expert load, seconds); 2 also shows a progress bar within each
        epoch (over the expert jobs, when Voronoi experts train in parallel)
        when tqdm is installed."""

COMMON_ATTRS_DOC = """
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of the features seen during fit, when ``X`` had string column names.
    schema_ : object
        Column types and category levels: ``schema_.is_categorical_`` (mask
        of the categorical columns) and ``schema_.levels_`` (column index to
        the sorted levels seen in fit).
    encoder_ : object
        The fitted input encoding: robust-scaled and quantile-normal views and
        missing-value indicators of the numeric columns, one-hot slots of the
        categorical ones (``encoder_.categorical_.slots_``).
    network_ : torch.nn.Module
        The fitted router and experts.
    loss_curve_ : list of float
        Training loss at each epoch, across both phases.
    validation_scores_ : list of float
        Negative validation loss at each epoch (NaN without validation data,
        and in the refit on all rows; the early-stopped fit's come from
        ``probe_members`` members where a refit followed it).
    n_iter_ : int
        Number of epochs run, across both phases (on tables of more than
        65,536 training rows, epochs of 65,536 rows; see ``max_epochs``).
    best_epoch_ : ndarray of shape (n_experts,)
        Epoch (index into ``loss_curve_``) whose weights each expert kept.
    expert_usage_ : ndarray of shape (n_experts,)
        Share of the training rows (of row-expert pairs for ``top_k=2``)
        routed to each expert by the fitted router. A zero marks an expert
        that serves no training row.
    n_experts_ : int
        Number of experts in the fitted model: ``n_experts``, unless
        :meth:`prune_experts` retired some.
    n_params_total_ : int
        Parameters of the model: all experts plus the router (the Voronoi
        prototypes, or the gate).
    n_params_active_ : int
        Parameters one row's prediction touches: its ``top_k`` experts plus
        the router, which compares the row with every prototype (or runs the
        whole gate).
    history_ : dict of lists
        Per-epoch ``phase``, ``train_loss``, ``validation_loss``,
        ``expert_load`` (share of training rows per expert), routing health
        (``load_cv``: coefficient of variation of the load across experts,
        ``dead_experts``: experts that served no training row,
        ``routing_entropy``: entropy of the load in nats, ``log(n_experts)``
        when balanced) and ``seconds``. A warm start appends its epochs."""
