//! Cryptographic building blocks of the identity service, all from well-kept crates
//! (aws-lc-rs, argon2, totp-rs): random secrets, hashes, constant-time comparison, password
//! hashing, AES-256-GCM for envelope encryption, P-256 signing keys and TOTP.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// One of OWASP's equivalent argon2id settings: 12 MiB, 3 iterations, 1 lane (the 19 MiB, t=2
/// one put api-auth's peak RSS over the 32 MB budget; README "Performance").
pub const ARGON2_MEMORY_KIB: u32 = 12 * 1024;
pub const ARGON2_ITERATIONS: u32 = 3;
pub const ARGON2_LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("crypto: {0}")]
pub struct CryptoError(pub String);

fn err(e: impl std::fmt::Display) -> CryptoError {
    CryptoError(e.to_string())
}

pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| err("no randomness"))?;
    Ok(buf)
}

/// A random secret of 256 bits, base64url without padding (43 characters, no `.`).
pub fn random_secret() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(32)?))
}

/// SHA-256 in lower-case hex: how high-entropy secrets (refresh tokens, API keys, emailed
/// tokens, recovery codes) are stored.
pub fn sha256_hex(data: &str) -> String {
    Sha256::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn argon2() -> Result<Argon2<'static>, CryptoError> {
    let params =
        Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None).map_err(err)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// An argon2id PHC string for `password`, with a fresh 128-bit salt.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&random_bytes(16)?).map_err(err)?;
    Ok(argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(err)?
        .to_string())
}

/// Whether `password` matches `phc`. The parameters are read from the hash, so hashes made
/// with older parameters still verify.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// A hash to verify against when the account does not exist, so that an unknown email takes
/// as long as a wrong password.
pub fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing").unwrap_or_default())
}

/// AES-256-GCM with `aad` bound in: (ciphertext with tag, nonce).
pub fn seal(key: &[u8], plaintext: &[u8], aad: &str) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| err("bad key"))?);
    let nonce_bytes = random_bytes(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| err("bad nonce"))?;
    let mut data = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(aad.as_bytes()), &mut data)
        .map_err(|_| err("seal failed"))?;
    Ok((data, nonce_bytes))
}

pub fn open(
    key: &[u8],
    ciphertext: &[u8],
    nonce: &[u8],
    aad: &str,
) -> Result<Vec<u8>, CryptoError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| err("bad key"))?);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| err("bad nonce"))?;
    let mut data = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
        .map_err(|_| err("ciphertext does not open with this key"))?;
    Ok(plain.to_vec())
}

/// A new P-256 key pair: (PKCS#8 private key, x, y) with the coordinates base64url.
pub fn generate_p256() -> Result<(Vec<u8>, String, String), CryptoError> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| err("key generation failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| err("key generation failed"))?;
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        return Err(err("unexpected public key encoding"));
    }
    Ok((
        pkcs8.as_ref().to_vec(),
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    ))
}

/// TOTP (RFC 6238): SHA-1, 6 digits, 30 s steps, one step of skew either way.
pub mod totp {
    use super::{CryptoError, err, random_bytes};
    use totp_rs::{Algorithm, Secret, TOTP};

    pub const STEP_SECONDS: u64 = 30;
    pub const DIGITS: usize = 6;

    fn totp(secret_b32: &str, issuer: &str, account: &str) -> Result<TOTP, CryptoError> {
        let bytes = Secret::Encoded(secret_b32.to_string())
            .to_bytes()
            .map_err(|e| err(format!("{e:?}")))?;
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP_SECONDS,
            bytes,
            Some(issuer.to_string()),
            account.to_string(),
        )
        .map_err(err)
    }

    /// A new 160-bit secret, base32.
    pub fn new_secret() -> Result<String, CryptoError> {
        Ok(Secret::Raw(random_bytes(20)?).to_encoded().to_string())
    }

    /// The `otpauth://` URI an authenticator app reads (usually as a QR code).
    pub fn uri(secret_b32: &str, issuer: &str, account: &str) -> Result<String, CryptoError> {
        Ok(totp(secret_b32, issuer, account)?.get_url())
    }

    /// The code for `unix_seconds` (tests and clients).
    pub fn code(secret_b32: &str, unix_seconds: u64) -> Result<String, CryptoError> {
        Ok(totp(secret_b32, "x", "x")?.generate(unix_seconds))
    }

    /// The time step `code` is good for at `unix_seconds` (current, previous or next), if any.
    /// Callers refuse a step not above the last one accepted, so each code works once.
    pub fn matching_step(secret_b32: &str, code: &str, unix_seconds: u64) -> Option<u64> {
        let t = totp(secret_b32, "x", "x").ok()?;
        let now = unix_seconds / STEP_SECONDS;
        [now.saturating_sub(1), now, now + 1]
            .into_iter()
            .find(|step| super::constant_time_eq(&t.generate(step * STEP_SECONDS), code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("correct horse battery stapl", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", decoy_password_hash()));
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let key = random_bytes(32).unwrap();
        let (c, n) = seal(&key, b"secret", "kid-1").unwrap();
        assert_eq!(open(&key, &c, &n, "kid-1").unwrap(), b"secret");
        assert!(open(&key, &c, &n, "kid-2").is_err());
        assert!(open(&random_bytes(32).unwrap(), &c, &n, "kid-1").is_err());
    }

    #[test]
    fn totp_codes_match_their_step_only() {
        let s = totp::new_secret().unwrap();
        let t = 1_800_000_000u64;
        let code = totp::code(&s, t).unwrap();
        assert_eq!(totp::matching_step(&s, &code, t), Some(t / 30));
        assert_eq!(totp::matching_step(&s, &code, t + 30), Some(t / 30));
        assert_eq!(totp::matching_step(&s, &code, t + 90), None);
        assert!(
            totp::uri(&s, "DWC", "ann@example.com")
                .unwrap()
                .starts_with("otpauth://totp/")
        );
    }

    #[test]
    fn secrets_are_distinct_and_hashes_stable() {
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(sha256_hex("abc").len(), 64);
        assert!(constant_time_eq("a", "a") && !constant_time_eq("a", "b"));
    }
}
