//! The library in one screen: make a data set, train a small denoising autoencoder on it, and
//! measure what it learned. Run with `cargo run --release --example tiny`.

use dae::data::mnist::{Images, Mnist, Split};
use dae::eval::evaluate::evaluate;
use dae::train::{Config, Trainer};

/// `count` images of 12×12 pixels, each a bright bar on black: horizontal (label 0) or
/// vertical (label 1), at a place that varies from image to image.
fn bars(count: usize, shift: usize) -> Split {
    let side = 12;
    let mut pixels = vec![0u8; count * side * side];
    let labels: Vec<u8> = (0..count).map(|i| (i % 2) as u8).collect();
    for (i, image) in pixels.chunks_mut(side * side).enumerate() {
        let at = (i / 2 * 5 + shift) % side;
        for (p, pixel) in image.iter_mut().enumerate() {
            let (row, col) = (p / side, p % side);
            let on = if labels[i] == 0 { row == at } else { col == at };
            *pixel = if on { 240 } else { 10 };
        }
    }
    Split { images: Images { count, rows: side, cols: side, pixels }, labels }
}

fn main() {
    let data = Mnist { train: bars(2000, 1), test: bars(500, 4) };
    // The reference experiment's settings, with a smaller network and more epochs.
    let config =
        Config { epochs: 40, batch_size: 32, lr: 1e-2, hidden: vec![64, 16, 4], ..Config::default() };
    let mut trainer = Trainer::new(config.clone(), &data);
    for _ in 0..config.epochs {
        let e = trainer.train_epoch(|_, _| {}).expect("the loss stays finite");
        if e.epoch.is_multiple_of(10) {
            println!("epoch {:>2}  loss {:.4}  val_loss {:.4}", e.epoch, e.train_loss, e.val_loss);
        }
    }
    let e = evaluate(&trainer.model, &data, config.noise, config.seed);
    println!("PSNR {:.2} dB noisy -> {:.2} dB reconstructed", e.noisy.psnr, e.reconstructed.psnr);
    println!("SSIM {:.3} noisy -> {:.3} reconstructed", e.noisy.ssim, e.reconstructed.ssim);
    println!("5-NN accuracy on the 4-number codes {:.3}, on the 144 pixels {:.3}", e.knn.codes, e.knn.pixels);
}
